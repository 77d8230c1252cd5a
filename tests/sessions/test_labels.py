"""Words an organizer or a participant reads: no internal numbers, the right column heads,
the reschedule reason where participants see it, and a warning for a time that has begun
or is less than an hour away."""

from datetime import timedelta

import pytest

from tests.helpers import log_in
from webapp.db import db, utcnow
from webapp.errors import NeedsConfirmation
from webapp.people.models import Role
from webapp.people.speakers import create_speaker
from webapp.reminders.messages import notice_lines
from webapp.sessions.services import create_session, reschedule_session


@pytest.fixture
def course(app, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    cadre = make_user(email="cadre@example.org")
    series = make_series(organizers=[organizer], participants=[cadre], sessions=1,
                         first_start=utcnow() + timedelta(days=3))  # fmt: skip
    return series, organizer


def client_of(app, email):
    client = app.test_client()
    log_in(client, email)
    return client


def test_a_moved_session_shows_its_reason_to_participants_and_no_version_number(app, course):
    series, organizer = course
    session = series.sessions[0]
    for hours in (1, 2):  # moved twice
        reschedule_session(session, starts_at=session.starts_at + timedelta(hours=hours),
                           ends_at=session.ends_at + timedelta(hours=hours), by=organizer,
                           now=utcnow(), reason="主讲人航班延误", accept_warnings=True)  # fmt: skip
    db.session.commit()
    page = client_of(app, "cadre@example.org").get(f"/sessions/{session.id}").text
    assert "原因：主讲人航班延误" in page
    manage = client_of(app, "organizer@example.org").get(f"/series/{series.id}/manage").text
    assert " v1" not in manage and " v2" not in manage


def test_the_change_notice_gives_the_reason(app, course):
    series, _organizer = course
    at = series.sessions[0].starts_at
    details = {
        "old_starts_at": at.isoformat(),
        "old_ends_at": (at + timedelta(hours=2)).isoformat(),
        "new_starts_at": (at + timedelta(hours=1)).isoformat(),
        "new_ends_at": (at + timedelta(hours=3)).isoformat(),
        "reason": "停电",
    }
    with app.test_request_context():
        lines = notice_lines([{"kind": "rescheduled", "details": details}], "Asia/Shanghai")
    assert any("停电" in line for line in lines)


def test_speakers_are_headed_by_their_title_and_robots_by_their_name(app, course):
    create_speaker(name="李教授", title="教授", affiliation="中国人民大学")
    db.session.commit()
    client = client_of(app, "organizer@example.org")
    assert "<th>职称</th>" in client.get("/speakers").text
    series, _organizer = course
    reminders = client.get(f"/series/{series.id}/reminders").text
    assert "机器人名称" in reminders and "姓名" not in reminders


@pytest.mark.parametrize(
    ("starts_in", "warning"),
    [(timedelta(minutes=-30), "已经开始"), (timedelta(minutes=40), "不到一小时")],
)
def test_a_time_that_has_begun_or_is_within_the_hour_asks_first(app, course, starts_in, warning):
    series, _organizer = course
    starts = utcnow() + starts_in
    with pytest.raises(NeedsConfirmation) as raised:
        create_session(series, starts_at=starts, ends_at=starts + timedelta(hours=2),
                       accept_warnings=False)  # fmt: skip
    assert any(warning in message for message in raised.value.warnings)
    create_session(series, starts_at=starts, ends_at=starts + timedelta(hours=2),
                   accept_warnings=True)  # fmt: skip


def test_a_time_a_day_away_needs_no_confirmation(app, course):
    series, _organizer = course
    starts = utcnow() + timedelta(days=1)
    create_session(series, starts_at=starts, ends_at=starts + timedelta(hours=2),
                   accept_warnings=False)  # fmt: skip
