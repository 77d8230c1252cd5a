"""Words an organizer or a participant reads: no internal numbers, the right column heads,
the reschedule reason where participants see it, and a warning for a time that has begun
or is less than an hour away."""

import re
from datetime import timedelta

import pytest

from tests.helpers import log_in
from webapp.db import db, utcnow
from webapp.errors import NeedsConfirmation
from webapp.i18n import format_time_range
from webapp.people.models import Role
from webapp.people.speakers import create_speaker
from webapp.reminders.messages import notice_lines
from webapp.reminders.notices import compose_notices
from webapp.sessions.schedule import time_participants_had
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


def test_originally_is_the_time_participants_last_had_before_the_latest_change_told(
    app, course
):
    """原定 follows what participants were told, not every step the organizer took: two moves
    before the notice goes out show the first time; once told, a further move shows the time
    they were told; and after that notice, the one before it. The history keeps every step."""
    series, organizer = course
    session = series.sessions[0]
    start = session.starts_at
    zone = "Asia/Shanghai"

    def move_to(hours: int) -> None:
        reschedule_session(session, starts_at=start + timedelta(hours=hours),
                           ends_at=start + timedelta(hours=hours + 2), by=organizer,
                           now=utcnow(), reason="调整", accept_warnings=True)  # fmt: skip
        db.session.commit()

    def told() -> None:  # the worker composes the change notice once changes settle
        assert compose_notices(now=utcnow() + timedelta(minutes=10)) >= 1
        db.session.commit()

    def originally() -> str | None:
        page = client_of(app, "cadre@example.org").get(f"/sessions/{session.id}").text
        found = re.search(r"原定 ([^.。<]*)", page)
        return found.group(1).strip() if found else None

    def clock(hours: int) -> str:
        with app.test_request_context():
            return format_time_range(start + timedelta(hours=hours),
                                     start + timedelta(hours=hours + 2), zone)  # fmt: skip

    move_to(1)
    move_to(2)  # nobody told yet: they still have the first time
    assert originally() == clock(0)
    told()  # one notice: "was 16:00, now 18:00"
    assert originally() == clock(0)
    move_to(3)  # not told yet: they have 18:00
    assert originally() == clock(2)
    told()
    assert originally() == clock(2)
    move_to(2)  # back to the time they had before: told, the page says it was 19:00
    told()
    assert originally() == clock(3)
    assert len(session.changes) == 4  # every step is kept
    manage = client_of(app, "organizer@example.org").get(f"/series/{series.id}/manage").text
    assert manage.count("调整") == 4


def test_a_session_moved_back_before_anyone_was_told_has_no_originally(app, course):
    series, organizer = course
    session = series.sessions[0]
    start, end = session.starts_at, session.ends_at
    for hours in (1, 0):
        reschedule_session(session, starts_at=start + timedelta(hours=hours),
                           ends_at=end + timedelta(hours=hours), by=organizer, now=utcnow(),
                           accept_warnings=True)  # fmt: skip
    db.session.commit()
    assert time_participants_had(session) is None
    assert "原定" not in client_of(app, "cadre@example.org").get(f"/sessions/{session.id}").text


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
