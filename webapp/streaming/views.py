"""Streaming routes: nginx-rtmp's callbacks and HLS auth subrequest (machine-facing), the
player and its heartbeats, replays, and the organizer's stream and live pages."""

import re
from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from webapp.db import db, utcnow
from webapp.forms import ActionForm
from webapp.i18n import format_start
from webapp.sessions.joining import may_join
from webapp.sessions.models import (
    AttendanceKind,
    AttendanceSource,
    LectureSession,
    SessionStatus,
    StreamMode,
)
from webapp.streaming import broadcasts
from webapp.streaming.keys import (
    callback_secret_matches,
    key_window,
    publish_key,
    read_viewer_token,
    viewer_token,
)
from webapp.streaming.models import Recording, RecordingState, Stream
from webapp.streaming.presence import check_moments
from webapp.streaming.viewers import live_figures, not_joined_by_unit, watching_now

bp = Blueprint("streaming", __name__)
# Machine-facing POSTs, authenticated by what they carry (the callbacks' secret, a signed
# viewer token), not by a cookie: no CSRF token (webapp.create_app exempts them).
CSRF_EXEMPT = ("rtmp_callback", "heartbeat")

NAME = re.compile(r"[A-Za-z0-9]{1,32}")
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
CLIENT_ID = re.compile(r"[0-9]{1,20}")
# A playlist `<name>.m3u8` or a segment `<name>-<n>.ts`; nginx's auth cache key (the
# `$hls_stream` map in nginx.conf.j2) parses the same way.
HLS_PATH = re.compile(r"/hls/([A-Za-z0-9]{1,32})(?:\.m3u8|-[0-9]{1,12}\.ts)")
CALLBACK_MAX_BYTES = 16 * 1024


def may_watch(user, session: LectureSession) -> bool:
    """Who may join, signed in, of a session that is not cancelled: enrolled participants of
    a published session, its organizers and admins."""
    return user.is_authenticated and not session.is_cancelled and may_join(user, session)


# --- nginx-rtmp callbacks -----------------------------------------------------------------


def _field(name: str, pattern: re.Pattern | None = None, *, unique: bool = False) -> str:
    """A field nginx sent, first occurrence (nginx writes its own fields before the
    publisher's query string, which may repeat them); "" when missing or malformed."""
    values = request.form.getlist(name)
    if not values or (unique and len(values) > 1):
        return ""
    value = values[0]
    if pattern is not None and not pattern.fullmatch(value):
        return ""
    return value


@bp.post("/streaming/rtmp")
def rtmp_callback():
    """Every nginx-rtmp callback (on_publish, on_publish_done, on_play, on_play_done,
    on_update, on_record_done) posts here with the shared secret in the query string."""
    if not callback_secret_matches(request.args.get("secret", "")[:200]):
        abort(403)
    if (request.content_length or 0) > CALLBACK_MAX_BYTES:
        abort(413)
    call = _field("call")
    name = _field("name", NAME)
    client_id = _field("clientid", CLIENT_ID)
    now = utcnow()
    if not name:
        answer = broadcasts.Answer(False, "no stream name")
    elif call == "publish":
        answer = broadcasts.on_publish(name, _field("key", KEY, unique=True), client_id, now=now)
    elif call == "publish_done":
        answer = broadcasts.on_publish_done(name, client_id, now=now)
    elif call == "update_publish":
        answer = broadcasts.on_update_publish(
            name, _field("key", KEY, unique=True), client_id, now=now
        )
    elif call in ("play", "update_play", "play_done"):
        viewer = read_viewer_token(_field("token", unique=True))
        if call == "play":
            answer = broadcasts.on_play(name, viewer, now=now)
        else:
            kind = AttendanceKind.LEAVE if call == "play_done" else AttendanceKind.HEARTBEAT
            answer = broadcasts.on_play_update(name, viewer, now=now, kind=kind)
    elif call == "record_done":
        answer = broadcasts.on_record_done(name, _field("path")[:1000], now=now)
    else:
        answer = broadcasts.Answer(False, "unknown call")
    if not answer.accepted:
        db.session.rollback()
        current_app.logger.info("rtmp %s %s refused: %s", call[:20], name, answer.why)
        return answer.why, 403, {"Content-Type": "text/plain"}
    db.session.commit()
    return "OK", 200, {"Content-Type": "text/plain"}


@bp.get("/streaming/hls-auth")
def hls_auth():
    """nginx's auth_request for every playlist and segment: 204 for someone who may watch
    the stream's session, 401 without a login, 403 otherwise."""
    match = HLS_PATH.fullmatch(request.headers.get("X-Original-URI", "").split("?", 1)[0])
    if match is None:
        return "", 403
    stream = db.session.scalar(select(Stream).where(Stream.name == match.group(1)))
    if stream is None:
        return "", 403
    if not current_user.is_authenticated:
        return "", 401
    session = db.session.get(LectureSession, stream.session_id)
    return ("", 204) if may_watch(current_user, session) else ("", 403)


# --- the player ---------------------------------------------------------------------------


@bp.get("/sessions/<int:session_id>/watch")
def watch(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    if not may_watch(current_user, session):
        abort(403)
    now = utcnow()
    recordings = _ready_recordings(session)
    stream = db.session.get(Stream, session.id)
    live_url = None
    if session.stream_mode == StreamMode.HOSTED and stream is not None:
        live_url = current_app.config["HLS_URL"].rstrip("/") + f"/{stream.name}.m3u8"
    return render_template(
        "streaming/watch.html",
        session=session,
        series=session.series,
        now=now,
        live_url=live_url,
        recordings=recordings,
        live_token=viewer_token(current_user.id, session.id),
        replay_token=viewer_token(current_user.id, session.id, replay=True),
        heartbeat_seconds=current_app.config["HEARTBEAT_SECONDS"],
        checks=[moment.isoformat() for moment in check_moments(session, current_user.id)],
        opens_text=format_start(
            session.starts_at, current_user.timezone or session.series.timezone, now=now
        ),
    )


def _ready_recordings(session: LectureSession) -> list[Recording]:
    return list(
        db.session.scalars(
            select(Recording)
            .where(Recording.session_id == session.id, Recording.state == RecordingState.READY)
            .order_by(Recording.recorded_at)
        )
    )


@bp.get("/sessions/<int:session_id>/status.json")
def status_json(session_id: int):
    """What the player polls: scheduled, live or ended (and whether a replay is ready)."""
    session = db.get_or_404(LectureSession, session_id)
    if not may_watch(current_user, session):
        abort(403)
    return jsonify(status=str(session.status), replay=bool(_ready_recordings(session)))


BEAT_KINDS = {
    "join": AttendanceKind.JOIN,
    "beat": AttendanceKind.HEARTBEAT,
    "leave": AttendanceKind.LEAVE,
    "check": AttendanceKind.CHECK,  # the player asked "still listening?"
    "answer": AttendanceKind.ANSWER,
}


@bp.post("/sessions/<int:session_id>/heartbeat")
def heartbeat(session_id: int):
    """The player says it is playing (visible, not paused): one appended event. The viewer
    token in the body says who (signed: no cookie, no database read), so this is safe from
    forgery without a CSRF token and costs one INSERT."""
    body = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(body, dict) and not hasattr(body, "get"):
        abort(400)
    token = body.get("token")
    viewer = read_viewer_token(token) if isinstance(token, str) else None
    kind_name = body.get("kind", "beat")
    kind = BEAT_KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if viewer is None or viewer[1] != session_id or kind is None:
        abort(403)
    user_id, _session_id, replay = viewer
    source = AttendanceSource.REPLAY if replay else AttendanceSource.PLAYER
    broadcasts.add_attendance(user_id, session_id, source, kind, utcnow())
    db.session.commit()
    return "", 204


@bp.get("/sessions/<int:session_id>/recordings/<int:recording_id>.mp4")
def recording_file(session_id: int, recording_id: int):
    session = db.get_or_404(LectureSession, session_id)
    recording = db.get_or_404(Recording, recording_id)
    if recording.session_id != session.id or recording.state != RecordingState.READY:
        abort(404)
    if not may_watch(current_user, session):
        abort(403)
    prefix = current_app.config["RECORDINGS_ACCEL_PREFIX"]
    if prefix:
        response = current_app.response_class(status=200, mimetype="video/mp4")
        response.headers["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + recording.path
        return response
    folder = broadcasts.recordings_folder().resolve()
    file = (folder / recording.path).resolve()
    if not file.is_relative_to(folder) or not file.is_file():
        abort(404)
    return send_file(file, mimetype="video/mp4", conditional=True, max_age=0)


# --- the organizer's pages ----------------------------------------------------------------


@bp.get("/sessions/<int:session_id>/stream")
def stream(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    stream = None
    if session.stream_mode == StreamMode.HOSTED:
        stream = broadcasts.stream_of(session)
        db.session.commit()
    opens, closes = key_window(session.starts_at, session.ends_at)
    ingest = current_app.config["RTMP_INGEST_URL"].rstrip("/")
    return render_template(
        "streaming/stream.html",
        session=session,
        series=session.series,
        stream=stream,
        ingest=ingest,
        key=publish_key(stream) if stream else None,
        opens=opens,
        closes=closes,
        action_form=ActionForm(),
        now=utcnow(),
    )


@bp.post("/sessions/<int:session_id>/stream/rotate")
def rotate(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    if session.stream_mode != StreamMode.HOSTED:
        abort(404)
    if ActionForm().validate_on_submit():
        broadcasts.rotate_key(broadcasts.stream_of(session), by_id=current_user.id, now=utcnow())
        db.session.commit()
        flash(
            _(
                "A new publish key is made. The old one no longer works: a broadcast using it "
                "stops within %(seconds)d seconds.",
                seconds=current_app.config["STREAM_UPDATE_SECONDS"],
            ),
            "info",
        )
    return redirect(url_for("streaming.stream", session_id=session.id))


@bp.post("/sessions/<int:session_id>/stream/status")
def set_status(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    wanted = request.args.get("status", "")
    if wanted not in (SessionStatus.LIVE, SessionStatus.ENDED) or session.is_cancelled:
        abort(400)
    if ActionForm().validate_on_submit():
        broadcasts.set_live_status(session, SessionStatus(wanted), now=utcnow())
        db.session.commit()
        flash(
            _("The session is live.") if wanted == "live" else _("The session has ended."), "info"
        )
    return redirect(url_for("streaming.stream", session_id=session.id))


@bp.get("/sessions/<int:session_id>/live")
def live(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    now = utcnow()
    return render_template(
        "streaming/live.html",
        session=session,
        series=session.series,
        figures=live_figures(session, now=now),
        watching=watching_now(session.id, now=now),
        not_joined=not_joined_by_unit(session),
        now=now,
    )


@bp.get("/sessions/<int:session_id>/live.json")
def live_json(session_id: int):
    """What the live page polls while the session is live."""
    session = db.get_or_404(LectureSession, session_id)
    now = utcnow()
    figures = live_figures(session, now=now)
    return jsonify(
        status=str(session.status),
        started_at=_iso(session.live_started_at),
        now=figures.now,
        total=figures.total,
        peak=figures.peak,
        samples=[[_iso(at), viewers] for at, viewers in figures.samples],
        watching=[user.display_name for user in watching_now(session.id, now=now)],
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None
