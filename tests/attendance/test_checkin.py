"""Group viewing: the room screen's code changes every minute; a participant in the room
checks in with it while it is valid, and the check-in counts for the time the broadcast
was live."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import log_in, post_form
from webapp.attendance import views
from webapp.attendance.checkin import code_is_valid, current_code
from webapp.attendance.reports import session_rows
from webapp.attendance.rules import Status
from webapp.db import db
from webapp.people.models import Role

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def room(app, make_series, make_user, monkeypatch):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    cadre = make_user(email="cadre@example.org", name="李春梅")
    series = make_series(organizers=[organizer], participants=[cadre], first_start=START)
    session = series.sessions[0]
    session.live_started_at = START + timedelta(minutes=2)
    session.live_ended_at = START + timedelta(minutes=118)
    db.session.commit()
    clock = {"now": START + timedelta(minutes=20, seconds=10)}
    monkeypatch.setattr(views, "utcnow", lambda: clock["now"])
    client = app.test_client()
    log_in(client, "cadre@example.org")
    return {"session": session, "cadre": cadre, "clock": clock, "client": client}


def test_the_code_changes_every_minute_and_stays_valid_for_two(app):
    now = START + timedelta(seconds=30)
    code = current_code(1, now=now)
    assert len(code) == 6 and code.isdigit()
    assert current_code(1, now=now + timedelta(minutes=1)) != code
    assert current_code(2, now=now) != code
    assert code_is_valid(1, code, now=now + timedelta(seconds=50))  # the next minute too
    assert not code_is_valid(1, code, now=now + timedelta(minutes=2))
    assert code_is_valid(1, f"{code[:3]} {code[3:]}", now=now)  # as the screen shows it
    assert not code_is_valid(1, "", now=now) and not code_is_valid(1, "x" * 100, now=now)


def test_the_screen_shows_the_code_and_its_qr_to_the_organizer(app, room):
    organizer = app.test_client()
    log_in(organizer, "organizer@example.org")
    page = organizer.get(f"/sessions/{room['session'].id}/checkin/screen").text
    code = current_code(room["session"].id, now=room["clock"]["now"])
    assert f"{code[:3]} {code[3:]}" in page and "<svg" in page
    assert room["client"].get(f"/sessions/{room['session'].id}/checkin/screen").status_code == 403


def test_a_check_in_with_the_code_counts_for_the_live_broadcast(app, room):
    session, client = room["session"], room["client"]
    url = f"/sessions/{session.id}/checkin"
    wrong = post_form(client, url, url, {"code": "000000"})
    assert wrong.status_code == 400 and "每分钟更换" in wrong.text
    code = current_code(session.id, now=room["clock"]["now"])
    assert post_form(client, f"{url}?code={code}", url, {"code": code}).status_code == 302
    [row] = session_rows(session)
    # Live 16:02–17:58: 116 of 120 minutes, whenever in it the check-in came.
    assert row.record.minutes == 116 and row.record.status == Status.PRESENT


def test_a_check_in_outside_the_session_is_refused(app, room):
    room["clock"]["now"] = START + timedelta(hours=5)
    session, client = room["session"], room["client"]
    code = current_code(session.id, now=room["clock"]["now"])
    url = f"/sessions/{session.id}/checkin"
    refused = post_form(client, url, url, {"code": code})
    assert refused.status_code == 400
    assert session_rows(session)[0].record.status == Status.ABSENT
