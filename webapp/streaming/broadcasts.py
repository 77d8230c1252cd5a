"""What nginx-rtmp tells the app, and what the session's live status becomes.

The callback services take plain values already checked for size and shape (views.py) and
the current time; each writes one small thing and makes no outbound call, so nginx waits
milliseconds. A publish opens a broadcast (the session goes live, its real start is kept);
a publisher that leaves and comes back within STREAM_RECONNECT_GRACE_SECONDS continues the
same broadcast; the worker's sweep ends a broadcast whose publisher stayed away, and moves
sessions held elsewhere (external rooms) along by the clock.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import func, insert, select

from webapp import audit, events
from webapp.db import db
from webapp.sessions.models import (
    AttendanceEvent,
    AttendanceKind,
    AttendanceSource,
    LectureSession,
    SessionStatus,
    StreamMode,
)
from webapp.streaming.keys import key_matches, key_window, new_key_salt, new_stream_name
from webapp.streaming.models import Broadcast, Recording, Stream


@dataclass(frozen=True)
class Answer:
    """What a callback answers nginx: accepted (2xx) or refused (403), and why (logged)."""

    accepted: bool
    why: str = ""


ACCEPTED = Answer(True)


def _refused(why: str) -> Answer:
    return Answer(False, why)


# --- streams and keys ---------------------------------------------------------------------


def stream_of(session: LectureSession) -> Stream:
    """The session's stream, made the first time an organizer asks for it."""
    stream = db.session.get(Stream, session.id)
    if stream is None:
        stream = Stream(session_id=session.id, name=new_stream_name(), key_salt=new_key_salt())
        db.session.add(stream)
        db.session.flush()
    return stream


def rotate_key(stream: Stream, *, by_id: int | None, now: datetime) -> None:
    """A new publish key; the old one stops working at once (a publisher using it is cut off
    at its next update, within STREAM_UPDATE_SECONDS)."""
    stream.key_salt = new_key_salt()
    stream.key_changed_at = now
    stream.key_changed_by_id = by_id
    session = db.session.get(LectureSession, stream.session_id)
    audit.record(
        "stream_key.rotated",
        object_type="stream",
        object_id=session.id,  # a stream is its session's
        label=f"{session.series.title} · {session.title}",
        series_id=session.series_id,
        details={"session_id": session.id},
        now=now,
    )
    db.session.flush()


def _stream_named(name: str) -> tuple[Stream, LectureSession] | None:
    row = db.session.execute(
        select(Stream, LectureSession)
        .join(LectureSession, LectureSession.id == Stream.session_id)
        .where(Stream.name == name)
    ).first()
    return (row[0], row[1]) if row else None


def _publishing(name: str, key: str, now: datetime) -> tuple[LectureSession | None, str]:
    """The session this name and key may publish to now, or why not."""
    found = _stream_named(name)
    if found is None:
        return None, "unknown stream"
    stream, session = found
    refusal = _key_refusal(stream, session, key, now)
    return (None, refusal) if refusal else (session, "")


def _key_refusal(stream: Stream, session: LectureSession, key: str, now: datetime) -> str:
    """Why this key may not publish now ("" when it may)."""
    if session.stream_mode != StreamMode.HOSTED:
        return "session is not self-hosted"
    if session.is_cancelled:
        return "session cancelled"
    if stream.stopped_at is not None:
        return "ended by the organizer"
    if not key or not key_matches(stream, key):
        return "wrong or revoked key"
    opens, closes = key_window(session.starts_at, session.ends_at)
    if not opens <= now < closes:
        return "outside the key's window"
    return ""


def _open_broadcast(session_id: int) -> Broadcast | None:
    return db.session.scalar(
        select(Broadcast)
        .where(Broadcast.session_id == session_id, Broadcast.ended_at.is_(None))
        .order_by(Broadcast.started_at.desc())
        .limit(1)
    )


# --- the callbacks ------------------------------------------------------------------------


def on_publish(name: str, key: str, client_id: str, *, now: datetime) -> Answer:
    session, refusal = _publishing(name, key, now)
    if session is None:
        return _refused(refusal)
    broadcast = _open_broadcast(session.id)
    if broadcast is not None and broadcast.dropped_at is None and broadcast.client_id:
        return _refused("another publisher is on the air")
    if broadcast is not None:  # back within the grace period: the same broadcast
        broadcast.client_id, broadcast.dropped_at = client_id, None
        broadcast.last_seen_at = now
        broadcast.reconnects += 1
        db.session.flush()
        return ACCEPTED
    db.session.add(
        Broadcast(session_id=session.id, started_at=now, client_id=client_id, last_seen_at=now)
    )
    go_live(session, now=now)
    return ACCEPTED


def on_publish_done(name: str, client_id: str, *, now: datetime) -> Answer:
    """The publisher left. The broadcast waits out the grace period (the sweep ends it)."""
    found = _stream_named(name)
    if found is None:
        return ACCEPTED
    broadcast = _open_broadcast(found[1].id)
    if broadcast is not None and broadcast.client_id == client_id:
        broadcast.client_id, broadcast.dropped_at = None, now
        db.session.flush()
    return ACCEPTED


def on_update_publish(name: str, key: str, client_id: str, *, now: datetime) -> Answer:
    """Every STREAM_UPDATE_SECONDS while publishing: the key must still be good (a rotated
    key, a cancelled session or a closed window ends the stream) and the session must not
    have been ended by hand."""
    session, refusal = _publishing(name, key, now)
    if session is None:
        return _refused(refusal)
    broadcast = _open_broadcast(session.id)
    if broadcast is not None and broadcast.client_id == client_id:
        broadcast.last_seen_at = now
        db.session.flush()
    return ACCEPTED


def last_heard_from_stream_server() -> datetime | None:
    """When nginx-rtmp last called back about a publisher (publish, update, done) or a
    finished recording: small tables, read for the admin's status page. Plays are not
    counted (they are in the large attendance table, and a server that takes publishes
    takes plays too)."""
    moments = db.session.execute(
        select(
            func.max(Broadcast.last_seen_at),
            func.max(Broadcast.dropped_at),
            select(func.max(Recording.recorded_at)).scalar_subquery(),
        )
    ).one()
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def add_attendance(
    user_id: int, session_id: int, source: AttendanceSource, kind: AttendanceKind, now: datetime
) -> None:
    """One appended event: a single INSERT, nothing read."""
    db.session.execute(
        insert(AttendanceEvent),
        [dict(session_id=session_id, user_id=user_id, source=source, kind=kind, at=now)],
    )


def on_play(name: str, viewer: tuple[int, int, bool] | None, *, now: datetime) -> Answer:
    """An RTMP viewer: only with their own viewer token for this session's stream."""
    found = _stream_named(name)
    if found is None or viewer is None:
        return _refused("unknown stream or no viewer token")
    user_id, session_id, replay = viewer
    session = found[1]
    if session_id != session.id or replay or session.is_cancelled:
        return _refused("token is for another session")
    add_attendance(user_id, session.id, AttendanceSource.RTMP, AttendanceKind.JOIN, now)
    return ACCEPTED


def on_play_update(name: str, viewer, *, now: datetime, kind=AttendanceKind.HEARTBEAT) -> Answer:
    found = _stream_named(name)
    if found is None or viewer is None or viewer[1] != found[1].id:
        return _refused("unknown stream or no viewer token")
    add_attendance(viewer[0], viewer[1], AttendanceSource.RTMP, kind, now)
    return ACCEPTED


def on_record_done(name: str, path: str, *, now: datetime) -> Answer:
    """A recording is closed. Only a file inside the recordings folder whose name starts with
    the stream's name is taken; the worker makes it playable."""
    found = _stream_named(name)
    if found is None:
        return _refused("unknown stream")
    folder = recordings_folder().resolve()
    file = Path(path).resolve()
    if not file.is_relative_to(folder) or not file.name.startswith(f"{name}-"):
        return _refused("recording outside the recordings folder")
    relative = str(file.relative_to(folder))
    already = db.session.scalar(select(Recording.id).where(Recording.source_path == relative))
    if already is None:
        db.session.add(Recording(session_id=found[1].id, source_path=relative, recorded_at=now))
        db.session.flush()
    return ACCEPTED


# --- live status --------------------------------------------------------------------------


def go_live(session: LectureSession, *, now: datetime, by_hand: bool = False) -> None:
    if session.status == SessionStatus.LIVE:
        return
    session.status = SessionStatus.LIVE
    session.live_started_at = session.live_started_at or now
    session.live_ended_at = None
    db.session.flush()
    events.session_live.send(
        session_id=session.id, series_id=session.series_id, started_at=now, by_hand=by_hand
    )


def end_live(session: LectureSession, *, now: datetime, by_hand: bool = False) -> None:
    if session.status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        return
    for broadcast in db.session.scalars(
        select(Broadcast).where(Broadcast.session_id == session.id, Broadcast.ended_at.is_(None))
    ):
        broadcast.ended_at = broadcast.dropped_at or now
    session.status = SessionStatus.ENDED
    session.live_ended_at = now
    db.session.flush()
    events.session_ended.send(
        session_id=session.id, series_id=session.series_id, ended_at=now, by_hand=by_hand
    )


def set_live_status(session: LectureSession, status: SessionStatus, *, now: datetime) -> None:
    """The organizer's override: live now, or ended. Ended by hand, a self-hosted session
    takes no publish (its stream is cut at the next update) until it is marked live again."""
    stream = db.session.get(Stream, session.id)
    if status == SessionStatus.LIVE:
        if stream is not None:
            stream.stopped_at = None
        go_live(session, now=now, by_hand=True)
    elif status == SessionStatus.ENDED:
        if stream is not None:
            stream.stopped_at = now
        end_live(session, now=now, by_hand=True)


def sweep(*, now: datetime) -> int:
    """The worker's round: end broadcasts whose publisher stayed away past the grace period
    (or whose updates stopped: nginx itself went away), and move sessions without a stream
    along by the clock. Returns how many sessions changed."""
    config = current_app.config
    grace = timedelta(seconds=config["STREAM_RECONNECT_GRACE_SECONDS"])
    silent = timedelta(seconds=3 * config["STREAM_UPDATE_SECONDS"])
    changed = 0
    gone = db.session.scalars(
        select(Broadcast).where(
            Broadcast.ended_at.is_(None),
            ((Broadcast.dropped_at.is_not(None)) & (Broadcast.dropped_at < now - grace))
            | (Broadcast.last_seen_at < now - silent - grace),
        )
    ).all()
    for broadcast in gone:
        broadcast.ended_at = broadcast.dropped_at or broadcast.last_seen_at
        session = db.session.get(LectureSession, broadcast.session_id)
        if _open_broadcast(session.id) is None:
            end_live(session, now=broadcast.ended_at)
            changed += 1
    # Rooms elsewhere: live from the start to the end. Self-hosted sessions that were never
    # on the air end when their key's window closes.
    for session in db.session.scalars(
        select(LectureSession).where(
            LectureSession.status.in_([SessionStatus.SCHEDULED, SessionStatus.LIVE]),
            LectureSession.published_at.is_not(None),
            LectureSession.starts_at <= now,
        )
    ):
        if session.stream_mode == StreamMode.EXTERNAL:
            if session.ends_at <= now:
                end_live(session, now=session.ends_at)
                changed += 1
            elif session.status == SessionStatus.SCHEDULED:
                go_live(session, now=session.starts_at)
                changed += 1
        elif (
            key_window(session.starts_at, session.ends_at)[1] <= now
            and _open_broadcast(session.id) is None
        ):
            end_live(session, now=now)
            changed += 1
    db.session.flush()
    return changed


def recordings_folder() -> Path:
    return streaming_folder() / "recordings"


def hls_folder() -> Path:
    return streaming_folder() / "hls"


def streaming_folder() -> Path:
    configured = current_app.config["STREAMING_FOLDER"]
    return Path(configured) if configured else Path(current_app.instance_path) / "streaming"
