"""A backup (pg_dump on PostgreSQL, SQLite's online backup) restored into an empty database
serves the same: a subscriber's feed byte for byte, and the attendance report of a session
that took place. The CLI writes timestamped files readable by the app's user only and keeps
the newest."""

import re
from datetime import timedelta

from tests.conftest import FreshContextClient, test_config
from tests.helpers import log_in
from webapp import create_app
from webapp.backups import create_backup, restore_backup
from webapp.db import db, utcnow
from webapp.feeds.links import link_token, token_for
from webapp.feeds.models import FeedKind
from webapp.people.models import Role
from webapp.sessions.joining import record_join


def attendance_rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = [re.sub(r"<[^>]+>", " ", row) for row in body.split("</tr>")]
    return [re.sub(r"\s+", " ", row).strip() for row in rows]


def test_a_restored_backup_serves_the_same_feed_and_attendance(
    app,
    make_user,
    make_series,
    scratch_database_url,
    tmp_path,
):
    organizer_user = make_user(Role.ORGANIZER, email="organizer@example.org")
    cadre = make_user(email="cadre@example.org", name="王建国")
    series = make_series(organizers=[organizer_user], participants=[cadre], sessions=2,
                         first_start=utcnow() - timedelta(days=3))  # fmt: skip
    held = series.sessions[0]
    record_join(held, cadre, now=held.starts_at + timedelta(minutes=20))
    raw = link_token(token_for(cadre, FeedKind.PERSONAL, now=utcnow()))
    db.session.commit()
    feed = app.test_client().get(f"/feeds/{raw}.ics")
    assert feed.status_code == 200
    organizer = app.test_client()
    log_in(organizer, "organizer@example.org")
    report = organizer.get(f"/sessions/{held.id}/attendance").text
    assert "王建国" in report

    path = create_backup(tmp_path / "backups", now=utcnow())
    assert path.stat().st_mode & 0o777 == 0o600

    restored = create_app(test_config(scratch_database_url))
    restored.test_client_class = FreshContextClient
    with restored.app_context():
        restore_backup(path)
        db.engine.dispose()
    assert restored.test_client().get(f"/feeds/{raw}.ics").data == feed.data
    reader = restored.test_client()
    log_in(reader, "organizer@example.org")
    again = reader.get(f"/sessions/{held.id}/attendance").text
    assert attendance_rows(again) == attendance_rows(report)
    with restored.app_context():
        db.engine.dispose()


def test_the_command_writes_a_backup_and_keeps_the_newest(app, tmp_path):
    runner = app.test_cli_runner()
    folder = tmp_path / "backups"
    for _ in range(3):
        result = runner.invoke(args=["backup", "create", "--folder", str(folder), "--keep", "2"])
        assert result.exit_code == 0, result.output
        assert "backup written" in result.output
    assert len(list(folder.glob("yunketang-*"))) == 2
    missing = runner.invoke(args=["backup", "restore", str(folder / "nothing.dump"), "--yes"])
    assert missing.exit_code != 0 and "no such backup" in missing.output
