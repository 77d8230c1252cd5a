"""The join button of a session with an external room: the product's own URL records the
join and redirects, only for enrolled participants, only from 30 minutes before the start
until the end; a press outside that window counts for nothing and says when the room opens."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.db import db
from webapp.pages import sessions as pages
from webapp.series.models import SeriesStatus
from webapp.sessions.models import AttendanceEvent, SessionJoin
from webapp.sessions.services import publish_series

ROOM = "https://meeting.tencent.com/dm/abcdef"


@pytest.fixture
def course(app, make_user, make_series, monkeypatch):
    cadre = make_user(phone="13910000001", name="李春梅")
    series = make_series(participants=[cadre], status=SeriesStatus.DRAFT)
    session = series.sessions[0]
    session.join_url = ROOM
    publish_series(series, now=session.starts_at - timedelta(days=1))
    db.session.commit()
    client = app.test_client()
    log_in(client, "13910000001")
    clock = {"now": session.starts_at - timedelta(days=8)}
    monkeypatch.setattr(pages, "utcnow", lambda: clock["now"])
    return {"session": session, "client": client, "clock": clock, "cadre": cadre}


def press(course):
    page = f"/sessions/{course['session'].id}"
    return post_form(course["client"], page, f"{page}/join", {})


def test_a_press_eight_days_early_counts_for_nothing_and_says_when_the_room_opens(course):
    page = course["client"].get(f"/sessions/{course['session'].id}").get_data(as_text=True)
    assert ROOM not in page  # the room's address is never in the page
    assert "直播间将于" in page and "开放" in page
    response = press(course)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/sessions/{course['session'].id}"
    text = course["client"].get(response.headers["Location"]).get_data(as_text=True)
    assert "直播间将于" in text and "开播前 30 分钟" in text
    assert db.session.scalars(select(SessionJoin)).all() == []
    assert db.session.scalars(select(AttendanceEvent)).all() == []


def test_from_thirty_minutes_before_the_start_a_press_is_recorded_and_redirected(app, course):
    course["clock"]["now"] = course["session"].starts_at - timedelta(minutes=30)
    response = press(course)
    assert response.headers["Location"] == ROOM
    course["clock"]["now"] = course["session"].starts_at + timedelta(minutes=40)
    assert press(course).headers["Location"] == ROOM
    events = db.session.scalars(select(AttendanceEvent).order_by(AttendanceEvent.id)).all()
    assert [(e.source.value, e.kind.value, e.user_id) for e in events] == [
        ("join", "join", course["cadre"].id),
        ("join", "join", course["cadre"].id),
    ]
    assert events[0].at == course["session"].starts_at - timedelta(minutes=30)
    # The window is a setting.
    app.config["JOIN_OPENS_MINUTES"] = 10
    course["clock"]["now"] = course["session"].starts_at - timedelta(minutes=20)
    assert press(course).headers["Location"] != ROOM


def test_after_the_end_the_room_is_closed(course):
    course["clock"]["now"] = course["session"].ends_at
    response = press(course)
    assert response.headers["Location"] != ROOM
    text = course["client"].get(response.headers["Location"]).get_data(as_text=True)
    assert "本课次已结束" in text
    assert db.session.scalars(select(AttendanceEvent)).all() == []
