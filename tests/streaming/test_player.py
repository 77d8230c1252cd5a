"""The player in Debian's Chromium, through nginx-rtmp: a participant's video plays (hls.js
decodes H.264/AAC from the protected HLS) and heartbeats are recorded while it plays."""

from datetime import timedelta

from sqlalchemy import select

from tests.helpers import log_in
from tests.streaming.helpers import hosted_session
from tests.streaming.test_nginx_rtmp import session_status, stop, wait_until
from webapp.attendance.explain import explain
from webapp.attendance.reports import session_rows
from webapp.db import db
from webapp.sessions.models import (
    AttendanceEvent,
    AttendanceSource,
    LectureSession,
    SessionStatus,
)


def test_the_player_plays_the_live_stream_and_records_heartbeats(
    app, nginx_rtmp, make_series, make_user, new_page
):
    app.config["HEARTBEAT_SECONDS"] = 2
    cadre = make_user(email="cadre@example.org")
    # Started a minute ago: what is watched counts inside the session's time.
    session, stream, key = hosted_session(
        make_series, make_user, participants=[cadre], starts_in=-timedelta(minutes=1)
    )
    publisher = nginx_rtmp.publish(stream.name, key, seconds=60)
    try:
        wait_until(lambda: session_status(session.id) == SessionStatus.LIVE, what="live")
        wait_until((nginx_rtmp.folder / "hls" / f"{stream.name}.m3u8").exists, what="HLS")
        client = app.test_client()
        log_in(client, cadre.email)
        name = app.config["SESSION_COOKIE_NAME"]
        page = new_page(phone=True)
        page.context.add_cookies(
            [{"name": name, "value": client.get_cookie(name).value, "url": nginx_rtmp.http}]
        )
        page.goto(f"{nginx_rtmp.http}/sessions/{session.id}/watch")
        video = page.locator("video")
        video.wait_for()
        # A click is the user's gesture that lets the video play with sound.
        video.click()
        page.evaluate("document.querySelector('video').play().catch(() => {})")
        # (Polled from here: the page's CSP forbids the eval that wait_for_function uses.)
        for _ in range(60):
            if page.evaluate("document.querySelector('video').currentTime") > 2:
                break
            page.wait_for_timeout(500)
        assert page.evaluate("document.querySelector('video').currentTime") > 2

        def beats():
            return db.session.scalars(
                select(AttendanceEvent.kind).where(
                    AttendanceEvent.user_id == cadre.id,
                    AttendanceEvent.source == AttendanceSource.PLAYER,
                )
            ).all()

        wait_until(lambda: len(beats()) >= 3, what="join and heartbeats")
        assert str(beats()[0]) == "join"
        # Paused, it is not watching: a leave, and no heartbeat after it.
        page.evaluate("document.querySelector('video').pause()")
        wait_until(lambda: str(beats()[-1]) == "leave", what="leave on pause")
        count = len(beats())
        page.wait_for_timeout(5000)
        assert len(beats()) == count
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # To the attendance report: the heartbeats are the participant's time in the session.
        db.session.expire_all()
        [row] = session_rows(db.session.get(LectureSession, session.id), beat_seconds=2)
        assert row.user.id == cadre.id and row.record.first_join is not None
        assert row.record.seconds > 0
        assert "进入" in explain(row.record, "Asia/Shanghai")
    finally:
        stop(publisher)
