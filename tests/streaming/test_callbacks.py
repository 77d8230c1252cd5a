"""nginx-rtmp's callbacks, as nginx sends them (form posts, the client's query string
appended raw): who may publish and when, one broadcast across a reconnect, RTMP viewers,
recordings, and every field treated as hostile."""

import socket
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.streaming.helpers import callback, hosted_session
from webapp import events
from webapp.db import db, utcnow
from webapp.sessions.models import AttendanceEvent, LectureSession, SessionStatus
from webapp.streaming.broadcasts import recordings_folder, rotate_key, sweep
from webapp.streaming.keys import publish_key, viewer_token
from webapp.streaming.models import Broadcast, Recording


@pytest.fixture
def hosted(app, make_series, make_user):
    viewer = make_user(email="cadre@example.org")
    session, stream, key = hosted_session(make_series, make_user, participants=[viewer])
    return session, stream, key, viewer


def _session(session_id):
    db.session.expire_all()
    return db.session.get(LectureSession, session_id)


def test_publish_with_the_key_goes_live_and_records_the_real_start(client, hosted):
    session, stream, key, _viewer = hosted
    heard = []

    def hear(_sender, **kwargs):
        heard.append(kwargs)

    events.session_live.connect(hear)
    before = utcnow()
    response = callback(client, "publish", stream.name, args=f"key={key}")
    assert response.status_code == 200
    session = _session(session.id)
    assert session.status == SessionStatus.LIVE
    assert before <= session.live_started_at <= utcnow()
    events.session_live.disconnect(hear)
    assert heard and heard[-1]["session_id"] == session.id and not heard[-1]["by_hand"]
    assert db.session.scalar(select(func.count()).select_from(Broadcast)) == 1


@pytest.mark.parametrize(
    "args",
    ["key=wrong", "", "key=", "key=%00", "key=" + "a" * 500],
    ids=["wrong", "none", "empty", "nul", "huge"],
)
def test_publish_without_the_right_key_is_refused(client, hosted, args):
    session, stream, _key, _viewer = hosted
    assert callback(client, "publish", stream.name, args=args).status_code == 403
    assert _session(session.id).status == SessionStatus.SCHEDULED


def test_a_second_key_in_the_query_string_is_refused(client, hosted):
    _session_, stream, key, _viewer = hosted
    response = callback(client, "publish", stream.name, args=f"key={key}&key=other")
    assert response.status_code == 403


def test_a_name_smuggled_in_the_query_string_does_not_replace_nginx_s_own(
    client, hosted, make_series, make_user
):
    """nginx appends the publisher's query string raw: `&name=` there comes after its own."""
    _session_, stream, key, _viewer = hosted
    other, other_stream, _other_key = hosted_session(make_series, make_user)
    response = callback(client, "publish", stream.name, args=f"key={key}&name={other_stream.name}")
    assert response.status_code == 200
    assert _session(other.id).status == SessionStatus.SCHEDULED


def test_a_rotated_key_is_refused_and_ends_a_stream_at_its_next_update(client, hosted):
    session, stream, old_key, _viewer = hosted
    assert callback(client, "publish", stream.name, args=f"key={old_key}").status_code == 200
    assert callback(client, "update_publish", stream.name, args=f"key={old_key}").status_code == 200
    rotate_key(stream, by_id=None, now=utcnow())
    db.session.commit()
    new_key = publish_key(stream)
    assert new_key != old_key
    assert callback(client, "update_publish", stream.name, args=f"key={old_key}").status_code == 403
    assert (
        callback(client, "publish", stream.name, clientid="8", args=f"key={old_key}").status_code
        == 403
    )
    assert callback(client, "update_publish", stream.name, args=f"key={new_key}").status_code == 200


def test_the_key_works_only_inside_its_window(client, app, make_series, make_user):
    early, stream, key = hosted_session(make_series, make_user, starts_in=timedelta(minutes=31))
    assert callback(client, "publish", stream.name, args=f"key={key}").status_code == 403
    over, stream, key = hosted_session(
        make_series, make_user, starts_in=-timedelta(hours=2, minutes=31)
    )
    assert callback(client, "publish", stream.name, args=f"key={key}").status_code == 403
    late, stream, key = hosted_session(
        make_series, make_user, starts_in=-timedelta(hours=2, minutes=29)
    )
    assert callback(client, "publish", stream.name, args=f"key={key}").status_code == 200


def test_a_cancelled_session_or_an_external_one_cannot_publish(client, hosted):
    session, stream, key, _viewer = hosted
    session.status = SessionStatus.CANCELLED
    db.session.commit()
    assert callback(client, "publish", stream.name, args=f"key={key}").status_code == 403


def test_callbacks_without_the_secret_are_refused_and_change_nothing(client, hosted):
    session, stream, key, _viewer = hosted
    for secret in ("", "wrong", "x" * 1000):
        response = callback(client, "publish", stream.name, secret=secret, args=f"key={key}")
        assert response.status_code == 403
    assert _session(session.id).status == SessionStatus.SCHEDULED


def test_a_drop_and_reconnect_within_the_grace_period_is_one_broadcast(client, app, hosted):
    session, stream, key, _viewer = hosted
    assert (
        callback(client, "publish", stream.name, clientid="1", args=f"key={key}").status_code == 200
    )
    assert (
        callback(client, "publish_done", stream.name, clientid="1", args=f"key={key}").status_code
        == 200
    )
    sweep(now=utcnow() + timedelta(seconds=20))  # 20 s later: still waiting
    db.session.commit()
    assert _session(session.id).status == SessionStatus.LIVE
    assert (
        callback(client, "publish", stream.name, clientid="2", args=f"key={key}").status_code == 200
    )
    broadcasts = db.session.scalars(select(Broadcast)).all()
    assert len(broadcasts) == 1 and broadcasts[0].reconnects == 1
    # Then the studio leaves for good: the broadcast ends when the grace period is over.
    assert callback(client, "publish_done", stream.name, clientid="2").status_code == 200
    grace = app.config["STREAM_RECONNECT_GRACE_SECONDS"]
    sweep(now=utcnow() + timedelta(seconds=grace + 1))
    db.session.commit()
    session = _session(session.id)
    assert session.status == SessionStatus.ENDED
    assert session.live_ended_at is not None
    db.session.expire_all()
    assert db.session.scalars(select(Broadcast)).one().ended_at is not None


def test_rtmp_viewers_play_with_their_own_token(client, hosted):
    session, stream, _key, viewer = hosted
    token = viewer_token(viewer.id, session.id)
    assert callback(client, "play", stream.name, args="token=forged").status_code == 403
    assert callback(client, "play", stream.name).status_code == 403
    assert callback(client, "play", stream.name, args=f"token={token}").status_code == 200
    assert callback(client, "update_play", stream.name, args=f"token={token}").status_code == 200
    assert callback(client, "play_done", stream.name, args=f"token={token}").status_code == 200
    kinds = db.session.scalars(
        select(AttendanceEvent.kind)
        .where(AttendanceEvent.user_id == viewer.id)
        .order_by(AttendanceEvent.id)
    ).all()
    assert [str(kind) for kind in kinds] == ["join", "heartbeat", "leave"]
    replay = viewer_token(viewer.id, session.id, replay=True)
    assert callback(client, "play", stream.name, args=f"token={replay}").status_code == 403


def test_a_recording_is_attached_only_from_the_recordings_folder(client, app, hosted):
    session, stream, _key, _viewer = hosted
    folder = recordings_folder()
    inside = folder / f"{stream.name}-1700000000.flv"
    assert callback(client, "record_done", stream.name, path="/etc/passwd").status_code == 403
    assert (
        callback(client, "record_done", stream.name, path=str(folder / "../x.flv")).status_code
        == 403
    )
    assert callback(client, "record_done", stream.name, path=str(inside)).status_code == 200
    assert callback(client, "record_done", stream.name, path=str(inside)).status_code == 200
    recording = db.session.scalars(select(Recording)).one()
    assert recording.session_id == session.id and recording.source_path == inside.name


@pytest.mark.parametrize(
    "body",
    [
        "",
        "call=publish",
        "call=publish&name=",
        "call=publish&name=" + "a" * 10_000,
        "call=publish&name=%ff%fe&key=%ff",
        "call=record_done&name=x&path=%00",
        "call=nonsense&name=abc",
        "call=play&name=abc&token=" + "t" * 5000,
        "name=abc&call=update_publish&clientid=-1",
        "\x00\x01\x02",
    ],
)
def test_hostile_fields_are_refused_without_an_error(client, hosted, body):
    from webapp.streaming.keys import callback_secret

    response = client.post(
        f"/streaming/rtmp?secret={callback_secret()}",
        data=body.encode("utf-8", "surrogateescape"),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code in (403, 413)


def test_callbacks_make_no_outbound_calls(client, hosted, monkeypatch):
    _session_, stream, key, viewer = hosted

    def refuse(*_args, **_kwargs):
        raise AssertionError("a callback made an outbound connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    token = viewer_token(viewer.id, stream.session_id)
    for call, args in [
        ("publish", f"key={key}"),
        ("update_publish", f"key={key}"),
        ("play", f"token={token}"),
        ("play_done", f"token={token}"),
        ("publish_done", f"key={key}"),
    ]:
        assert callback(client, call, stream.name, args=args).status_code == 200
