"""A session is the same event wherever a calendar meets it: in a feed, in the "add to
calendar" download, in a reminder's attachment and in a move notice (one builder)."""

from email import message_from_bytes, policy

from icalendar import Calendar

from tests.helpers import NOW, log_in
from webapp.db import db
from webapp.feeds.content import (
    render_feed,
)
from webapp.people.models import Role
from webapp.reminders.messages import personalise, render_notice, render_reminder
from webapp.sessions.services import (
    update_session,
)

COMPARED = ("UID", "SUMMARY", "DESCRIPTION", "LOCATION", "URL", "CONFERENCE", "ORGANIZER")


def attachment_event(shared) -> tuple[str, object]:
    raw = personalise(shared, "学员", "cadre@example.org", "r:1")
    message = message_from_bytes(raw, policy=policy.default)
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    calendar = Calendar.from_ical(part.get_content())
    return str(calendar["METHOD"]), calendar.walk("VEVENT")[0]


def facts(event) -> dict:
    found = {name: str(event.get(name)) for name in COMPARED}
    found["ORGANIZER CN"] = str(event["ORGANIZER"].params.get("CN"))
    start = event["DTSTART"]
    found["DTSTART"] = (start.dt.isoformat(), start.params.get("TZID"))
    return found


def test_feed_download_reminder_and_notice_carry_the_same_event(app, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    cadre = make_user(email="cadre@example.org")
    series = make_series(organizers=[organizer], participants=[cadre], timezone="Asia/Urumqi")
    session = series.sessions[0]
    update_session(
        session,
        title=session.title,
        location="乡政府三楼会议室",
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        accept_warnings=True,
        join_url="https://meeting.tencent.com/dm/abc",
    )
    db.session.commit()

    [from_feed] = Calendar.from_ical(render_feed(f"user:{cadre.id}", now=NOW)).walk("VEVENT")
    db.session.commit()  # the fragments it stored
    client = app.test_client()
    log_in(client, cadre.email)
    download = Calendar.from_ical(client.get(f"/sessions/{session.id}/calendar.ics").data)
    method, from_reminder = attachment_event(
        render_reminder(session, "zh_CN", "Asia/Shanghai", now=NOW)
    )
    assert method == "PUBLISH"
    times = {
        "old_starts_at": session.starts_at.isoformat(),
        "old_ends_at": session.ends_at.isoformat(),
        "new_starts_at": session.starts_at.isoformat(),
        "new_ends_at": session.ends_at.isoformat(),
    }
    change = {"kind": "rescheduled", "session_id": session.id, "details": times}
    method, from_notice = attachment_event(
        render_notice([change], session, series, "zh_CN", "Asia/Shanghai", now=NOW)
    )
    assert method == "REQUEST"

    expected = facts(from_feed)
    assert expected["DTSTART"][1] == "Asia/Urumqi"  # the series' zone, with its VTIMEZONE
    assert expected["CONFERENCE"] == "https://meeting.tencent.com/dm/abc"
    assert "mailto:" in expected["ORGANIZER"]
    for event in (download.walk("VEVENT")[0], from_reminder, from_notice):
        assert facts(event) == expected
    assert [tz["TZID"] for tz in download.walk("VTIMEZONE")] == ["Asia/Urumqi"]
