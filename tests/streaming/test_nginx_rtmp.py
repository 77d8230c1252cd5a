"""Against real parts: nginx with Debian's RTMP module, configured as deploy/ says, in front
of the app; ffmpeg publishing and playing as OBS and an RTMP viewer would."""

import os
import subprocess
import time
from datetime import timedelta

import pytest
import urllib3
from sqlalchemy import func, select

from tests.helpers import log_in
from tests.streaming.helpers import hosted_session
from webapp.db import db, utcnow
from webapp.people.models import Role
from webapp.sessions.models import AttendanceEvent, AttendanceSource, LectureSession, SessionStatus
from webapp.streaming.broadcasts import rotate_key
from webapp.streaming.keys import viewer_token
from webapp.streaming.models import Broadcast, Recording, RecordingState
from webapp.streaming.recordings import make_playable

HTTP = urllib3.PoolManager(retries=False, timeout=10)


def wait_until(condition, *, seconds=20.0, step=0.2, what="condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.expire_all()
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def session_status(session_id):
    db.session.expire_all()
    return db.session.get(LectureSession, session_id).status


def cookie_of(app, email):
    client = app.test_client()
    log_in(client, email)
    name = app.config["SESSION_COOKIE_NAME"]
    return f"{name}={client.get_cookie(name).value}"


def get(url, cookie=None):
    return HTTP.request("GET", url, headers={"Cookie": cookie} if cookie else {})


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def people(make_user):
    return {
        "participant": make_user(email="cadre@example.org"),
        "outsider": make_user(email="outsider@example.org"),
        "organizer": make_user(Role.ORGANIZER, email="organizer@example.org"),
    }


def test_the_key_publishes_hls_is_served_only_to_enrolled_logins_and_the_recording_replays(
    app, nginx_rtmp, make_series, make_user, people
):
    session, stream, key = hosted_session(
        make_series, make_user, participants=[people["participant"]]
    )
    publisher = nginx_rtmp.publish(stream.name, key, seconds=8)
    wait_until(lambda: session_status(session.id) == SessionStatus.LIVE, what="live")
    playlist = nginx_rtmp.folder / "hls" / f"{stream.name}.m3u8"
    wait_until(playlist.exists, what="the HLS playlist")
    url = f"{nginx_rtmp.http}/hls/{stream.name}.m3u8"
    assert get(url).status == 401
    assert get(url, cookie_of(app, "outsider@example.org")).status == 403
    viewer = cookie_of(app, "cadre@example.org")
    answer = get(url, viewer)
    assert answer.status == 200, answer.data
    text = answer.data.decode()
    assert "#EXTM3U" in text and key not in text
    segment = next(line for line in text.splitlines() if line.endswith(".ts"))
    assert get(f"{nginx_rtmp.http}/hls/{segment}").status == 401
    assert get(f"{nginx_rtmp.http}/hls/{segment}", viewer).status == 200
    # The key is nowhere a viewer can see: file names, the player page.
    files = [path.name for path in nginx_rtmp.folder.rglob("*")]
    assert not any(key in name for name in files)
    page = get(f"{nginx_rtmp.http}/sessions/{session.id}/watch", viewer)
    assert page.status == 200 and key not in page.data.decode()
    assert stream.name in page.data.decode()

    assert publisher.wait(timeout=30) == 0, (nginx_rtmp.folder / "ffmpeg.log").read_text()
    recording = wait_until(
        lambda: db.session.scalars(select(Recording)).first(), what="on_record_done"
    )
    assert key not in recording.source_path
    assert make_playable(now=utcnow()) == 1
    db.session.expire_all()
    recording = db.session.get(Recording, recording.id)
    assert recording.state == RecordingState.READY, recording.error
    assert recording.seconds and recording.seconds > 5
    replay = get(f"{nginx_rtmp.http}/sessions/{session.id}/recordings/{recording.id}.mp4", viewer)
    assert replay.status == 200 and replay.data[4:8] == b"ftyp"
    refused = get(
        f"{nginx_rtmp.http}/sessions/{session.id}/recordings/{recording.id}.mp4",
        cookie_of(app, "outsider@example.org"),
    )
    assert refused.status == 403
    assert get(f"{nginx_rtmp.http}/_recordings/{recording.path}", viewer).status == 404


def _refused(nginx_rtmp, name, key):
    publisher = nginx_rtmp.publish(name, key, seconds=5)
    try:
        code = publisher.wait(timeout=15)
    except subprocess.TimeoutExpired:
        stop(publisher)
        return False
    return code != 0


def test_wrong_revoked_and_out_of_window_keys_are_refused(app, nginx_rtmp, make_series, make_user):
    session, stream, key = hosted_session(make_series, make_user)
    assert _refused(nginx_rtmp, stream.name, "wrong-key")
    rotate_key(stream, by_id=None, now=utcnow())
    db.session.commit()
    assert _refused(nginx_rtmp, stream.name, key)  # revoked
    assert session_status(session.id) == SessionStatus.SCHEDULED
    early, early_stream, early_key = hosted_session(
        make_series, make_user, starts_in=timedelta(hours=2)
    )
    assert _refused(nginx_rtmp, early_stream.name, early_key)
    assert session_status(early.id) == SessionStatus.SCHEDULED
    assert db.session.scalar(select(func.count()).select_from(Broadcast)) == 0
    assert "refused" in nginx_rtmp.error_log() or "publish" in nginx_rtmp.error_log()


def test_a_key_revoked_on_the_air_ends_the_stream_at_the_next_update(
    app, nginx_rtmp, make_series, make_user
):
    session, stream, key = hosted_session(make_series, make_user)
    publisher = nginx_rtmp.publish(stream.name, key, seconds=60)
    try:
        wait_until(lambda: session_status(session.id) == SessionStatus.LIVE, what="live")
        rotate_key(stream, by_id=None, now=utcnow())
        db.session.commit()
        # nginx calls on_update every 2 s here (30 s by default); the refused update cuts the
        # stream long before its 60 s are over.
        publisher.wait(timeout=20)
    finally:
        stop(publisher)


def test_an_rtmp_viewer_plays_with_a_token_and_play_and_leave_are_recorded(
    app, nginx_rtmp, make_series, make_user, people
):
    session, stream, key = hosted_session(
        make_series, make_user, participants=[people["participant"]],
        starts_in=-timedelta(minutes=1),
    )  # fmt: skip
    publisher = nginx_rtmp.publish(stream.name, key, seconds=15)
    try:
        wait_until(lambda: session_status(session.id) == SessionStatus.LIVE, what="live")
        token = viewer_token(people["participant"].id, session.id)
        play = [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-i",
            f"{nginx_rtmp.rtmp}/{stream.name}?token={token}", "-t", "2", "-f", "null", "-",
        ]  # fmt: skip
        assert subprocess.run(play, capture_output=True, timeout=30).returncode == 0
        no_token = [*play[:5], f"{nginx_rtmp.rtmp}/{stream.name}", *play[6:]]
        assert subprocess.run(no_token, capture_output=True, timeout=30).returncode != 0

        def kinds():
            return [
                str(kind)
                for kind in db.session.scalars(
                    select(AttendanceEvent.kind)
                    .where(AttendanceEvent.source == AttendanceSource.RTMP)
                    .order_by(AttendanceEvent.id)
                )
            ]

        wait_until(lambda: kinds()[-1:] == ["leave"], what="play_done")
        # play, an update every 2 s while playing (a heartbeat), leave; nothing for the
        # viewer without a token.
        assert kinds()[0] == "join" and set(kinds()[1:-1]) <= {"heartbeat"}
        assert db.session.scalar(select(func.count(func.distinct(AttendanceEvent.user_id)))) == 1
        # To the attendance report: the RTMP viewer's time is theirs.
        from webapp.attendance.reports import session_rows

        [row] = session_rows(db.session.get(LectureSession, session.id))
        assert row.user.id == people["participant"].id and row.record.seconds > 0
    finally:
        stop(publisher)


def test_a_publisher_that_drops_and_reconnects_within_the_grace_period_is_one_broadcast(
    app, nginx_rtmp, make_series, make_user
):
    session, stream, key = hosted_session(make_series, make_user)
    first = nginx_rtmp.publish(stream.name, key, seconds=4)
    assert first.wait(timeout=20) == 0
    wait_until(
        lambda: db.session.scalars(select(Broadcast)).one().dropped_at is not None,
        what="publish_done",
    )
    second = nginx_rtmp.publish(stream.name, key, seconds=4)
    assert second.wait(timeout=20) == 0
    db.session.expire_all()
    broadcast = db.session.scalars(select(Broadcast)).one()
    assert broadcast.reconnects == 1 and broadcast.ended_at is None
    assert session_status(session.id) == SessionStatus.LIVE


def test_publishing_is_refused_while_the_app_is_down(app, start_nginx, make_series, make_user):
    from tests.streaming.conftest import free_port

    session, stream, key = hosted_session(make_series, make_user)
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the app is down
    server = start_nginx(nobody, name="app-down")
    publisher = server.publish(stream.name, key, seconds=5)
    try:
        assert publisher.wait(timeout=15) != 0
    finally:
        stop(publisher)
    assert session_status(session.id) == SessionStatus.SCHEDULED
    assert not list((server.folder / "hls").glob("*.m3u8"))


def test_flask_demo_broadcast_puts_the_demo_s_first_session_on_the_air(app, nginx_rtmp):
    from webapp.demo.services import LIVE_SESSION_TITLE, load_demo

    load_demo(now=utcnow())
    db.session.commit()
    app.config["RTMP_INGEST_URL"] = nginx_rtmp.rtmp
    result = app.test_cli_runner().invoke(args=["demo", "broadcast", "--seconds", "6"])
    assert result.exit_code == 0, result.output
    assert "On the air as session" in result.output
    db.session.expire_all()
    session = db.session.scalars(
        select(LectureSession).where(LectureSession.title == LIVE_SESSION_TITLE)
    ).one()
    assert session.status == SessionStatus.LIVE
    first = min(session.series.sessions, key=lambda s: s.starts_at)
    assert first.id == session.id
    assert db.session.scalar(select(func.count()).select_from(Broadcast)) == 1


def test_flask_demo_broadcast_says_why_when_streaming_is_off(app):
    result = app.test_cli_runner().invoke(args=["demo", "broadcast", "--seconds", "1"])
    assert result.exit_code != 0
    assert "Streaming is off" in result.output


def test_a_caching_edge_serves_hls_to_logged_in_viewers_and_caches_it(
    app, live_server, start_nginx, make_series, make_user, people, tmp_path
):
    """deploy/nginx/edge.conf in front of an origin that trusts the edge's address."""
    from pathlib import Path

    from tests.streaming.conftest import NGINX, free_port, wait_for_port

    session, stream, key = hosted_session(
        make_series, make_user, participants=[people["participant"]]
    )
    origin = start_nginx(live_server, name="origin")
    origin_port = int(origin.http.rsplit(":", 1)[1])
    app.config["STREAMING_FOLDER"] = str(origin.folder)
    # The origin again, now trusting 127.0.0.1 as an edge (its own test config).
    from webapp.streaming.cli import render_nginx_config

    (tmp_path / "origin.conf").write_text(
        render_nginx_config(
            app_url=live_server,
            http_listen=f"127.0.0.1:{origin_port}",
            rtmp_listen=origin.rtmp.split("//")[1].split("/")[0],
            folder=origin.folder,
            user="root" if os.geteuid() == 0 else None,
            edges=("127.0.0.1",),
        )
    )
    subprocess.run([NGINX, "-c", str(tmp_path / "origin.conf"), "-s", "reload"], check=True)
    time.sleep(0.5)
    edge_port = free_port()
    edge = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "edge.conf"
    text = (
        edge.read_text()
        .replace("/var/cache/nginx", str(tmp_path / "edge-cache"))
        .replace("10.0.0.10:80", f"127.0.0.1:{origin_port}")
        .replace("listen 80;", f"listen 127.0.0.1:{edge_port};")
    )
    (tmp_path / "edge-cache").mkdir()
    (tmp_path / "edge-body.conf").write_text(text)
    (tmp_path / "edge.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\npid {tmp_path}/edge.pid;\nerror_log {tmp_path}/edge-error.log info;\n"
        "events { worker_connections 256; }\n"
        f"http {{ access_log {tmp_path}/edge-access.log; "
        f"client_body_temp_path {tmp_path}/edge-tmp; proxy_temp_path {tmp_path}/edge-tmp; "
        f"include {tmp_path}/edge-body.conf; }}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-c", str(tmp_path / "edge.conf"), "-e", str(tmp_path / "edge-error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    publisher = origin.publish(stream.name, key, seconds=20)
    try:
        wait_for_port(edge_port)
        playlist = origin.folder / "hls" / f"{stream.name}.m3u8"
        wait_until(playlist.exists, what="the HLS playlist")
        base = f"http://127.0.0.1:{edge_port}/hls/{stream.name}.m3u8"
        assert get(base).status == 401
        viewers = [cookie_of(app, "cadre@example.org") for _ in range(3)]
        answers = [get(base, cookie) for cookie in viewers]
        assert [answer.status for answer in answers] == [200, 200, 200]
        segment = next(
            line for line in answers[0].data.decode().splitlines() if line.endswith(".ts")
        )
        for cookie in viewers:
            assert get(f"http://127.0.0.1:{edge_port}/hls/{segment}", cookie).status == 200
        assert get(f"http://127.0.0.1:{edge_port}/hls/{segment}").status == 401
        # Three viewers, one fetch of the segment from the origin: the edge's cache.
        log = (tmp_path / "edge-cache" / "yunketang-hls").rglob("*")
        assert sum(1 for file in log if file.is_file()) >= 2  # the playlist and the segment
    finally:
        stop(publisher)
        process.terminate()
        process.wait(timeout=10)
