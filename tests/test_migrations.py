import io
import os
from pathlib import Path

import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from tests.conftest import test_config
from tests.helpers import require
from webapp import create_app
from webapp.db import db


def test_models_and_migrations_agree(app):
    """The database the migrations built has exactly the models' schema (`flask db check`)."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_migrations_are_at_head(app):
    migrate = app.extensions["migrate"]
    script = ScriptDirectory.from_config(migrate.migrate.get_config())
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    assert set(current) == set(script.get_heads())
    assert len(script.get_heads()) == 1, "migrations have more than one head"


def test_migrations_go_down_to_empty_and_up_again(scratch_database_url):
    app = create_app(test_config(scratch_database_url))
    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, db.metadata) == []
        db.engine.dispose()


def test_frozen_records_keep_their_first_join_and_last_leave_through_the_upgrade(
    scratch_database_url,
):
    """Records frozen before the first join and last leave had columns of their own get
    them from their intervals (revision deb7c9a62385)."""
    from datetime import timedelta

    from tests.factories import Factories
    from webapp.attendance.finalise import finalise
    from webapp.attendance.models import AttendanceRecord
    from webapp.db import utcnow
    from webapp.sessions.models import AttendanceKind, AttendanceSource
    from webapp.streaming.broadcasts import add_attendance

    app = create_app(test_config(scratch_database_url))
    with app.app_context():
        flask_migrate.upgrade()
        make = Factories(now=utcnow())
        user = make.user()
        series = make.series(
            participants=[user], sessions=1, first_start=utcnow() - timedelta(days=2)
        )
        session = series.sessions[0]
        for minute in range(10, 60):
            add_attendance(user.id, session.id, AttendanceSource.PLAYER, AttendanceKind.HEARTBEAT,
                           session.starts_at + timedelta(minutes=minute))  # fmt: skip
        finalise(session, now=utcnow())
        db.session.commit()
        session_id, start, user_id = session.id, session.starts_at, user.id
        db.session.close()  # the ids read above opened a transaction; the downgrade drops
        # tables that refer to what it read (PostgreSQL would wait for it to end)
        flask_migrate.downgrade(revision="a2b875abff25")
        flask_migrate.upgrade()
        db.session.expire_all()
        record = db.session.get(AttendanceRecord, (session_id, user_id))
        assert record.first_join == start + timedelta(minutes=10)
        assert record.last_leave == start + timedelta(minutes=59, seconds=30)
        db.session.remove()
        db.engine.dispose()


def test_changes_made_before_the_upgrade_count_as_told_unless_their_notice_waits(
    scratch_database_url,
):
    """Revision d173e8fac2c1: a change already told (its notice composed) keeps its time as
    announced; one whose session still has a notice waiting stays untold."""
    from datetime import timedelta

    from sqlalchemy import select

    from tests.factories import Factories
    from webapp.db import utcnow
    from webapp.reminders.notices import compose_notices
    from webapp.sessions.models import SessionChange
    from webapp.sessions.services import reschedule_session

    app = create_app(test_config(scratch_database_url))
    with app.app_context():
        flask_migrate.upgrade()
        make = Factories(now=utcnow())
        series = make.series(participants=[make.user()], sessions=2,
                             first_start=utcnow() + timedelta(days=3))  # fmt: skip
        for session in series.sessions:
            reschedule_session(session, starts_at=session.starts_at + timedelta(hours=1),
                               ends_at=session.ends_at + timedelta(hours=1), by=None,
                               now=utcnow(), accept_warnings=True)  # fmt: skip
            if session is series.sessions[0]:
                compose_notices(now=utcnow() + timedelta(minutes=10))
        db.session.commit()
        told, waiting = (session.id for session in series.sessions)
        db.session.close()  # the ids read above opened a transaction; the downgrade drops
        # tables that refer to what it read (PostgreSQL would wait for it to end)
        flask_migrate.downgrade(revision="deb7c9a62385")
        flask_migrate.upgrade()
        db.session.expire_all()
        changes = {c.session_id: c for c in db.session.scalars(select(SessionChange))}
        assert changes[told].announced_at == changes[told].changed_at
        assert changes[waiting].announced_at is None
        db.session.remove()
        db.engine.dispose()


# The release before this one: the last commit that landed before the admin area, the API
# and the webhooks (issue 16). Its own code builds the database an upgrade starts from.
PREVIOUS_RELEASE = "ba3b6a298732a562c1ddc840e98adb77f6c988b7"


def _previous_release(tmp_path) -> Path:
    """The previous release's source, unpacked from git (not a checkout of this tree)."""
    import shutil
    import subprocess
    import tarfile

    git = shutil.which("git")
    root = Path(__file__).resolve().parents[1]
    known = git and subprocess.run(
        [git, "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"], cwd=root, capture_output=True
    )
    require(bool(known) and known.returncode == 0,
            "the previous release's commit is not in this clone's history")  # fmt: skip
    archive = subprocess.run(
        [git, "archive", "--format=tar", PREVIOUS_RELEASE, "webapp", "scheduler"],
        cwd=root, capture_output=True, check=True,
    )  # fmt: skip
    folder = tmp_path / "previous"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def test_an_upgrade_from_the_previous_release_keeps_its_data(scratch_database_url, tmp_path):
    """The previous release makes its schema and loads the demo classroom; `flask db upgrade`
    of this release then brings it to head with every row kept, and the product works on
    it: units are active, a feed renders, the API lists the series, the audit log starts."""
    import subprocess
    import sys

    from sqlalchemy import func, select

    from webapp.api.tokens import Scope, create_token
    from webapp.audit import AuditEntry
    from webapp.db import utcnow
    from webapp.demo import data
    from webapp.feeds.services import store_feed
    from webapp.people.models import Unit, User
    from webapp.series.models import Enrollment, Series
    from webapp.sessions.models import LectureSession

    previous = _previous_release(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(previous),  # its `webapp`, not this one
        "YUNKETANG_DATABASE_URL": scratch_database_url,
        "YUNKETANG_INSTANCE_PATH": str(tmp_path / "instance"),
        "YUNKETANG_SECRET_KEY": "upgrade-test-secret-key-0123456789abcdef",
        "FLASK_APP": "webapp",
    }
    for command in (["db", "upgrade"], ["demo", "load"]):
        done = subprocess.run(
            [sys.executable, "-m", "flask", *command], cwd=previous, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    probe = subprocess.run(
        [sys.executable, "-c", "import webapp, sys; print(webapp.__file__)"],
        cwd=previous, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert probe.stdout.startswith(str(previous))  # it really was the previous release's code

    app = create_app(test_config(scratch_database_url))
    with app.app_context():

        def counts():
            return [
                db.session.scalar(select(func.count()).select_from(model))
                for model in (User, Unit, Series, LectureSession, Enrollment)
            ]

        before = counts()
        assert all(before) and before[0] > 50  # the demo's cadres, and the rest
        db.session.close()  # end the reading transaction: PostgreSQL's DDL would wait for it
        flask_migrate.upgrade()
        db.session.expire_all()
        assert counts() == before
        assert db.session.scalar(select(func.count()).where(Unit.is_active.is_(False))) == 0
        series = db.session.scalars(select(Series)).first()
        feed = store_feed(f"series:{series.id}", now=utcnow())
        assert b"BEGIN:VCALENDAR" in feed.body
        admin = db.session.scalar(select(User).where(User.email == data.ADMIN["email"]))
        secret = create_token(admin, name="t", scope=Scope.READ, days=1, now=utcnow())[1]
        db.session.commit()
        listed = app.test_client().get(
            "/api/v1/series", headers={"Authorization": f"Bearer {secret}"}
        )
        assert listed.status_code == 200
        assert data.SERIES_TITLE in [item["title"] for item in listed.json["items"]]
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1  # the token
        db.session.remove()
        db.engine.dispose()
