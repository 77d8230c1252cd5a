import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from tests.conftest import test_config
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
