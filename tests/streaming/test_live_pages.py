"""The pages around a live session: the organizer's stream settings (key, new key, status
by hand), live status on the participant's home and schedule, the player's heartbeats, the
organizer's live page, replays, and the worker's sweep of live status."""

import shutil
import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf_token_from, log_in, post_form, require
from tests.streaming.helpers import callback, hosted_session
from webapp import events
from webapp.db import db, utcnow
from webapp.people.models import Role, UnitKind
from webapp.people.units import create_unit
from webapp.sessions.models import (
    AttendanceEvent,
    AttendanceKind,
    AttendanceSource,
    LectureSession,
    SessionStatus,
    StreamMode,
)
from webapp.streaming.broadcasts import add_attendance, recordings_folder, sweep
from webapp.streaming.keys import publish_key, viewer_token
from webapp.streaming.models import Recording, RecordingState, Stream, ViewerSample
from webapp.streaming.recordings import make_playable
from webapp.streaming.viewers import sample_viewers


@pytest.fixture
def course(app, make_series, make_user):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    office = create_unit("乡政府机关", UnitKind.OFFICE)
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    cadres = [
        make_user(email="cadre1@example.org", name="李春梅", unit=village),
        make_user(email="cadre2@example.org", name="王建国", unit=village),
        make_user(email="cadre3@example.org", name="张德胜", unit=office),
    ]
    session, stream, key = hosted_session(
        make_series, make_user, organizers=[organizer], participants=cadres
    )
    return {"session": session, "stream": stream, "key": key, "cadres": cadres}


def logged_in(app, email):
    client = app.test_client()
    log_in(client, email)
    return client


def fresh(session_id):
    db.session.expire_all()
    return db.session.get(LectureSession, session_id)


def test_the_organizer_sees_the_ingest_and_key_and_nobody_else_sees_the_key(app, course):
    app.config["RTMP_INGEST_URL"] = "rtmp://live.example.org/live"
    session, stream, key = course["session"], course["stream"], course["key"]
    page = logged_in(app, "organizer@example.org").get(f"/sessions/{session.id}/stream").text
    assert f"rtmp://live.example.org/live/{stream.name}?key={key}" in page
    assert f"{stream.name}?key={key}" in page
    cadre = logged_in(app, "cadre1@example.org")
    assert cadre.get(f"/sessions/{session.id}/stream").status_code == 403
    for url in ("/", "/my/schedule", f"/sessions/{session.id}", f"/sessions/{session.id}/watch"):
        response = cadre.get(url)
        assert response.status_code == 200, url
        assert key not in response.text, url


def test_without_an_ingest_url_the_stream_page_says_streaming_is_not_set_up(app, course):
    page = logged_in(app, "organizer@example.org").get(f"/sessions/{course['session'].id}/stream")
    assert "RTMP_INGEST_URL" in page.text


def test_a_new_key_from_the_page_refuses_the_old_one(app, client, course):
    session, stream, old = course["session"], course["stream"], course["key"]
    organizer = logged_in(app, "organizer@example.org")
    page = f"/sessions/{session.id}/stream"
    response = post_form(organizer, page, f"{page}/rotate", {})
    assert response.status_code == 302
    db.session.expire_all()
    new = publish_key(db.session.get(Stream, session.id))
    assert new != old
    assert callback(client, "publish", stream.name, args=f"key={old}").status_code == 403
    assert callback(client, "publish", stream.name, args=f"key={new}").status_code == 200


def test_the_organizer_sets_the_status_by_hand_and_the_events_say_so(app, course):
    session = course["session"]
    heard = []

    def hear(signal_name):
        return lambda _sender, **kwargs: heard.append((signal_name, kwargs))

    live, ended = hear("live"), hear("ended")
    events.session_live.connect(live)
    events.session_ended.connect(ended)
    try:
        organizer = logged_in(app, "organizer@example.org")
        page = f"/sessions/{session.id}/stream"
        token = csrf_token_from(organizer.get(page).text)
        organizer.post(f"{page}/status?status=live", data={"csrf_token": token})
        assert fresh(session.id).status == SessionStatus.LIVE
        assert fresh(session.id).live_started_at is not None
        organizer.post(f"{page}/status?status=ended", data={"csrf_token": token})
        assert fresh(session.id).status == SessionStatus.ENDED
        assert (
            organizer.post(f"{page}/status?status=nonsense", data={"csrf_token": token}).status_code
            == 400
        )
    finally:
        events.session_live.disconnect(live)
        events.session_ended.disconnect(ended)
    assert [(name, kwargs["by_hand"]) for name, kwargs in heard] == [
        ("live", True),
        ("ended", True),
    ]
    # Ended by hand: a publisher still on the air is cut off at its next update, and an
    # encoder that reconnects by itself is refused until the organizer marks it live again.
    name, key = course["stream"].name, course["key"]
    nginx = app.test_client()
    assert callback(nginx, "update_publish", name, args=f"key={key}").status_code == 403
    assert callback(nginx, "publish", name, clientid="9", args=f"key={key}").status_code == 403
    organizer.post(f"{page}/status?status=live", data={"csrf_token": token})
    assert callback(nginx, "publish", name, clientid="9", args=f"key={key}").status_code == 200


def test_home_and_schedule_show_the_live_card_only_while_live(app, client, course):
    session, stream, key = course["session"], course["stream"], course["key"]
    cadre = logged_in(app, "cadre1@example.org")
    watch = f"/sessions/{session.id}/watch"
    before = cadre.get("/").text
    # Before the broadcast: no live card; the next-session card offers the player, which
    # waits for the start (the room opens 30 minutes before).
    assert "正在直播" not in before and "下一次课" in before
    callback(client, "publish", stream.name, args=f"key={key}")
    for url in ("/", "/my/schedule"):
        page = cadre.get(url).text
        assert "正在直播" in page and f'href="{watch}"' in page, url
    detail = cadre.get(f"/sessions/{session.id}").text
    assert f'href="{watch}"' in detail


def test_heartbeats_need_the_viewer_s_own_signed_token(app, client, course):
    session, cadre = course["session"], course["cadres"][0]
    url = f"/sessions/{session.id}/heartbeat"
    token = viewer_token(cadre.id, session.id)
    assert client.post(url, json={"token": token, "kind": "join"}).status_code == 204
    assert client.post(url, json={"token": token}).status_code == 204
    assert client.post(url, json={"token": token, "kind": "leave"}).status_code == 204
    for body in (
        {"token": token[:-2] + "xx"},
        {"token": viewer_token(cadre.id, session.id + 1)},
        {"token": token, "kind": "teleport"},
        {"token": 12},
        {"token": token, "kind": ["beat"]},
        {},
        [token],
    ):
        assert client.post(url, json=body).status_code in (400, 403), body
    assert client.post(url, data="{not json", content_type="application/json").status_code in (
        400,
        403,
    )
    replay = viewer_token(cadre.id, session.id, replay=True)
    assert client.post(url, json={"token": replay}).status_code == 204
    rows = db.session.execute(
        select(AttendanceEvent.source, AttendanceEvent.kind).order_by(AttendanceEvent.id)
    ).all()
    assert [(str(source), str(kind)) for source, kind in rows] == [
        ("player", "join"),
        ("player", "heartbeat"),
        ("player", "leave"),
        ("replay", "heartbeat"),
    ]


def test_the_live_page_counts_viewers_now_peak_total_and_who_has_not_joined(app, course):
    session = course["session"]
    first, second, third = course["cadres"]
    now = utcnow()
    session.status = SessionStatus.LIVE
    add_attendance(first.id, session.id, AttendanceSource.PLAYER, AttendanceKind.JOIN, now)
    add_attendance(first.id, session.id, AttendanceSource.PLAYER, AttendanceKind.HEARTBEAT, now)
    add_attendance(second.id, session.id, AttendanceSource.PLAYER, AttendanceKind.JOIN, now)
    add_attendance(second.id, session.id, AttendanceSource.PLAYER, AttendanceKind.LEAVE, now)
    db.session.commit()
    assert sample_viewers(now=now) == 1
    assert sample_viewers(now=now) == 1  # a second worker in the same half minute
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(ViewerSample)) == 1
    organizer = logged_in(app, "organizer@example.org")
    live = organizer.get(f"/sessions/{session.id}/live.json").json
    assert (live["now"], live["total"], live["peak"]) == (1, 2, 1)
    assert live["watching"] == ["李春梅"] and len(live["samples"]) == 1
    page = organizer.get(f"/sessions/{session.id}/live").text
    assert "乡政府机关" in page and "张德胜" in page  # not joined yet, by unit
    assert "大瓦窑村" not in page.split("尚未进入")[1]
    assert (
        logged_in(app, "cadre1@example.org").get(f"/sessions/{session.id}/live").status_code == 403
    )


def test_rooms_elsewhere_go_live_at_the_start_and_end_at_the_end(app, make_series, make_user):
    series = make_series(first_start=utcnow() - timedelta(minutes=1))
    session = series.sessions[0]
    assert session.stream_mode == StreamMode.EXTERNAL
    assert sweep(now=utcnow()) == 1
    db.session.commit()
    assert fresh(session.id).status == SessionStatus.LIVE
    assert sweep(now=session.ends_at + timedelta(seconds=1)) == 1
    db.session.commit()
    assert fresh(session.id).status == SessionStatus.ENDED


def test_a_self_hosted_session_never_on_the_air_ends_when_its_key_window_closes(
    app, make_series, make_user
):
    session, _stream, _key = hosted_session(make_series, make_user, starts_in=-timedelta(minutes=5))
    sweep(now=utcnow())
    db.session.commit()
    assert fresh(session.id).status == SessionStatus.SCHEDULED  # waits for the broadcast
    sweep(now=session.ends_at + timedelta(minutes=31))
    db.session.commit()
    assert fresh(session.id).status == SessionStatus.ENDED


def test_a_broadcast_whose_updates_stop_ends_after_the_grace_period(app, client, course):
    session, stream, key = course["session"], course["stream"], course["key"]
    callback(client, "publish", stream.name, args=f"key={key}")
    config = app.config
    silent = 3 * config["STREAM_UPDATE_SECONDS"] + config["STREAM_RECONNECT_GRACE_SECONDS"]
    sweep(now=utcnow() + timedelta(seconds=silent - 5))
    db.session.commit()
    assert fresh(session.id).status == SessionStatus.LIVE
    sweep(now=utcnow() + timedelta(seconds=silent + 5))
    db.session.commit()
    assert fresh(session.id).status == SessionStatus.ENDED


def _flv(path):
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=160x90:rate=10:duration=2", "-c:v", "libx264", "-f", "flv", str(path)],
        check=True,
    )  # fmt: skip


def test_recordings_are_made_playable_and_a_broken_file_fails_alone(app, client, course, tmp_path):
    require(shutil.which("ffmpeg") is not None, "ffmpeg is not installed (apt-get install ffmpeg)")
    app.config["STREAMING_FOLDER"] = str(tmp_path)
    session, stream = course["session"], course["stream"]
    folder = recordings_folder()
    folder.mkdir(parents=True)
    broken, good = folder / f"{stream.name}-1.flv", folder / f"{stream.name}-2.flv"
    broken.write_bytes(b"FLV not really")
    _flv(good)
    for file in (broken, good):
        assert callback(client, "record_done", stream.name, path=str(file)).status_code == 200
    assert make_playable(now=utcnow()) == 2
    db.session.expire_all()
    states = {r.source_path: r for r in db.session.scalars(select(Recording))}
    assert states[broken.name].state == RecordingState.FAILED and states[broken.name].error
    ready = states[good.name]
    assert ready.state == RecordingState.READY and ready.path.endswith(".mp4") and ready.size
    # The replay plays on the player page, for those allowed, with ranges (seeking).
    session = fresh(session.id)
    session.status = SessionStatus.ENDED
    db.session.commit()
    cadre = logged_in(app, "cadre1@example.org")
    page = cadre.get(f"/sessions/{session.id}/watch").text
    video = f"/sessions/{session.id}/recordings/{ready.id}.mp4"
    assert video in page and "回放" in page
    with cadre.get(video, headers={"Range": "bytes=0-99"}) as partial:
        assert partial.status_code == 206 and len(partial.data) == 100
    failed = f"/sessions/{session.id}/recordings/{states[broken.name].id}.mp4"
    assert cadre.get(failed).status_code == 404


def test_the_session_form_chooses_the_broadcast_mode(app, course):
    session = course["session"]
    organizer = logged_in(app, "organizer@example.org")
    page = organizer.get(f"/sessions/{session.id}/edit").text
    assert 'value="hosted"' in page and 'value="external"' in page


def test_the_hls_auth_subrequest_answers_by_login_and_stream(app, make_series, make_user, course):
    """What nginx asks for every playlist and segment (X-Original-URI): 204, 401 or 403."""
    stream = course["stream"]
    other_session, other_stream, _key = hosted_session(make_series, make_user)

    def ask(client, uri):
        return client.get("/streaming/hls-auth", headers={"X-Original-URI": uri}).status_code

    cadre = logged_in(app, "cadre1@example.org")
    assert ask(cadre, f"/hls/{stream.name}.m3u8") == 204
    assert ask(cadre, f"/hls/{stream.name}-17.ts") == 204
    assert ask(cadre, f"/hls/{stream.name}-17.ts?x=1") == 204
    assert ask(app.test_client(), f"/hls/{stream.name}.m3u8") == 401
    assert ask(cadre, f"/hls/{other_stream.name}.m3u8") == 403  # not enrolled there
    assert ask(cadre, f"/hls/{other_stream.name}-3.ts") == 403
    for uri in (
        "",
        "/hls/",
        "/hls/../etc/passwd",
        f"/hls/{stream.name}.mp4",
        f"/hls/{stream.name}-x.ts",
        "/hls/nosuchstream.m3u8",
        "/" * 5000,
    ):
        assert ask(cadre, uri) == 403, uri  # fmt: skip


def test_a_session_on_the_air_early_still_gets_its_reminders(app, client, course):
    from webapp.reminders.models import Delivery, DeliveryKind, ReminderRule
    from webapp.reminders.planning import plan_reminders

    session, stream, key = course["session"], course["stream"], course["key"]
    db.session.add(ReminderRule(series_id=session.series_id, minutes_before=15))
    session.starts_at, session.ends_at = (
        utcnow() + timedelta(minutes=20),
        utcnow() + timedelta(hours=2),
    )
    db.session.commit()
    assert callback(client, "publish", stream.name, args=f"key={key}").status_code == 200
    assert fresh(session.id).status == SessionStatus.LIVE  # a test signal, 20 minutes early
    plan_reminders(now=utcnow())
    db.session.commit()
    kinds = db.session.scalars(select(Delivery.kind).where(Delivery.session_id == session.id))
    assert DeliveryKind.REMINDER in set(kinds)
