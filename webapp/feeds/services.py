"""Feeds: who may have which feed, private links, rendering and storing feed documents,
marking them stale when something in them changes, and counting fetches."""

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session, selectinload

from webapp.db import db, utcnow
from webapp.feeds.builder import (
    FeedHeader,
    assemble,
    etag_for,
    fragment_version,
    render_event,
    with_alarm,
)
from webapp.feeds.models import EventFragment, FeedDocument, FeedKind, FeedToken
from webapp.people.models import Speaker, Unit, User
from webapp.people.services import unit_and_descendant_ids
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    Visibility,
    series_organizer,
)
from webapp.series.services import can_view_series, liaison_unit_ids
from webapp.sessions.models import Lecture, LectureSession, SessionStatus, lecture_speaker

CANCELLED_KEPT = timedelta(days=30)
STALE_GRACE = timedelta(seconds=5)  # after this a request renders a stale feed itself
MAX_AGE = timedelta(days=1)  # re-render daily, so cancelled sessions age out

# --- who may have which feed -----------------------------------------------------------------


def allowed_feeds(user: User) -> list[tuple[FeedKind, int | None]]:
    """Every feed the user may subscribe to."""
    feeds: list[tuple[FeedKind, int | None]] = [(FeedKind.PERSONAL, None)]
    if user.is_organizer or user.is_admin:
        feeds.append((FeedKind.ORGANIZER, None))
    units = liaison_unit_ids(user)
    if user.is_admin:
        units = list(db.session.scalars(select(Unit.id).where(Unit.parent_id.is_(None))))
    feeds.extend((FeedKind.UNIT, unit_id) for unit_id in sorted(set(units)))
    return feeds


def may_have(user: User, kind: FeedKind, target_id: int | None) -> bool:
    if kind == FeedKind.SERIES:
        series = db.session.get(Series, target_id)
        return series is not None and can_view_series(user, series)
    if kind == FeedKind.UNIT and user.is_admin:
        return db.session.get(Unit, target_id) is not None
    return (kind, target_id) in allowed_feeds(user)


# --- private links ---------------------------------------------------------------------------


def _derive(nonce: str) -> str:
    """The link's token: 256 bits from the secret key and the row's nonce."""
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"feed-token:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def active_token(user: User, kind: FeedKind, target_id: int | None = None) -> FeedToken | None:
    """The user's active link for a feed, if there is one."""
    same_target = (
        FeedToken.target_id.is_(None) if target_id is None else FeedToken.target_id == target_id
    )
    return db.session.scalar(
        select(FeedToken).where(
            FeedToken.user_id == user.id,
            FeedToken.kind == kind,
            same_target,
            FeedToken.revoked_at.is_(None),
        )
    )


def token_for(
    user: User, kind: FeedKind, target_id: int | None = None, *, now: datetime
) -> FeedToken:
    """The user's active link for a feed, made on first use."""
    existing = active_token(user, kind, target_id)
    if existing is not None:
        return existing
    nonce = secrets.token_urlsafe(24)
    token = FeedToken(
        user_id=user.id,
        kind=kind,
        target_id=target_id,
        nonce=nonce,
        token_hash=_hash(_derive(nonce)),
        created_at=now,
    )
    db.session.add(token)
    db.session.flush()
    return token


def link_token(token: FeedToken) -> str:
    return _derive(token.nonce)


def has_had_token(user: User, kind: FeedKind) -> bool:
    """Whether the user ever had a link of this kind (a revoked one is not remade unasked)."""
    query = select(FeedToken.id).where(FeedToken.user_id == user.id, FeedToken.kind == kind)
    return db.session.scalar(query.limit(1)) is not None


def rotate_token(token: FeedToken, *, now: datetime) -> FeedToken:
    """Give the feed a new link; the old one answers 404 from now on."""
    token.revoked_at = now
    db.session.flush()
    return token_for(token.user, token.kind, token.target_id, now=now)


def revoke_token(token: FeedToken, *, now: datetime) -> None:
    """End the link; the calendar app subscribed to it gets 404."""
    token.revoked_at = now
    db.session.flush()


def find_token(raw: str) -> FeedToken | None:
    """The active token a link carries, or None (the comparison takes constant time)."""
    if not raw or len(raw) > 100:
        return None
    digest = _hash(raw)
    token = db.session.scalar(select(FeedToken).where(FeedToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None or not token.user.is_active:
        return None
    return token


def feed_key(kind: FeedKind, *, user_id: int | None = None, target_id: int | None = None) -> str:
    if kind == FeedKind.PERSONAL:
        return f"user:{user_id}"
    if kind == FeedKind.ORGANIZER:
        return f"organizer:{user_id}"
    return f"{kind.value}:{target_id}"


def key_for_token(token: FeedToken) -> str:
    return feed_key(token.kind, user_id=token.user_id, target_id=token.target_id)


# --- what a feed holds -----------------------------------------------------------------------


def _visible_sessions(query, *, now: datetime) -> list[LectureSession]:
    query = (
        query.where(
            Series.status != SeriesStatus.DRAFT,
            LectureSession.published_at.is_not(None),
            or_(
                LectureSession.status != SessionStatus.CANCELLED,
                LectureSession.ends_at > now - CANCELLED_KEPT,
            ),
        )
        .options(
            selectinload(LectureSession.series).selectinload(Series.organizers),
            selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
        )
        .order_by(LectureSession.starts_at, LectureSession.id)
    )
    return list(db.session.scalars(query).unique().all())


def _sessions_of_series_ids(series_ids, *, now: datetime) -> list[LectureSession]:
    query = (
        select(LectureSession)
        .join(Series, Series.id == LectureSession.series_id)
        .where(LectureSession.series_id.in_(series_ids))
    )
    return _visible_sessions(query, now=now)


def feed_sessions(key: str, *, now: datetime) -> list[LectureSession]:
    kind, _sep, ident = key.partition(":")
    target = int(ident)
    if kind == "user":
        ids = select(Enrollment.series_id).where(
            Enrollment.user_id == target, Enrollment.status == EnrollmentStatus.ENROLLED
        )
    elif kind == "organizer":
        ids = select(series_organizer.c.series_id).where(series_organizer.c.user_id == target)
    elif kind == "series":
        ids = select(Series.id).where(Series.id == target)
    elif kind == "unit":
        unit = db.session.get(Unit, target)
        unit_ids = unit_and_descendant_ids(unit) if unit else []
        ids = (
            select(Enrollment.series_id)
            .join(User, User.id == Enrollment.user_id)
            .where(User.unit_id.in_(unit_ids), Enrollment.status == EnrollmentStatus.ENROLLED)
        )
    else:
        raise ValueError(key)
    return _sessions_of_series_ids(ids, now=now)


def feed_header(key: str) -> tuple[FeedHeader, User | None]:
    kind, _sep, ident = key.partition(":")
    default_zone = current_app.config["DEFAULT_TIMEZONE"]
    if kind in ("user", "organizer"):
        user = db.session.get(User, int(ident))
        language = user.locale or current_app.config["DEFAULT_LOCALE"]
        with force_locale(language):
            name = (
                _("Yunketang · %(name)s's schedule", name=user.display_name)
                if kind == "user"
                else _("Yunketang · series I organize")
            )
        return FeedHeader(name=name, timezone=user.timezone or default_zone), user
    if kind == "series":
        series = db.session.get(Series, int(ident))
        return FeedHeader(
            name=series.title, timezone=series.timezone, description=series.description or None
        ), None
    unit = db.session.get(Unit, int(ident))
    with force_locale(current_app.config["DEFAULT_LOCALE"]):
        name = _("Yunketang · %(unit)s", unit=unit.name)
    return FeedHeader(name=name, timezone=default_zone), None


def _page_urls(sessions: Iterable[LectureSession]) -> dict[int, str]:
    base = current_app.config["BASE_URL"]
    with current_app.test_request_context(base_url=base):
        return {s.id: url_for("sessions.detail", session_id=s.id, _external=True) for s in sessions}


def event_fragments(sessions: list[LectureSession]) -> list[bytes]:
    """Each session's VEVENT, rendered by the library only when the session changed."""
    urls = _page_urls(sessions)
    stored = {
        fragment.session_id: fragment
        for fragment in db.session.scalars(
            select(EventFragment).where(EventFragment.session_id.in_([s.id for s in sessions]))
        )
    }
    result = []
    for session in sessions:
        version = fragment_version(session, urls[session.id])
        fragment = stored.get(session.id)
        if fragment is None or fragment.version != version:
            body = render_event(session, page_url=urls[session.id])
            if fragment is None:
                fragment = EventFragment(session_id=session.id, version=version, body=body)
                db.session.add(fragment)
            else:
                fragment.version, fragment.body = version, body
        result.append(fragment.body)
    return result


def render_feed(key: str, *, now: datetime) -> bytes:
    """The whole feed for a key, from stored fragments and cached time zones."""
    header, user = feed_header(key)
    sessions = feed_sessions(key, now=now)
    fragments = event_fragments(sessions)
    alarm = user.feed_alarm_minutes if user is not None and key.startswith("user:") else None
    if alarm:
        fragments = [with_alarm(f, alarm, header.name) for f in fragments]
    zones = [(s.series.timezone, s.starts_at.year) for s in sessions]
    return assemble(header, zones, fragments)


# --- stored documents ------------------------------------------------------------------------


def store_feed(key: str, *, now: datetime, seen_stale: datetime | None = None) -> FeedDocument:
    """Render a feed and keep it; the ETag and Last-Modified change only with the content."""
    body = render_feed(key, now=now)
    document = db.session.get(FeedDocument, key)
    etag = etag_for(body)
    if document is None:
        document = FeedDocument(
            feed_key=key, body=body, etag=etag, last_modified=now, rendered_at=now, stale_since=None
        )
        db.session.add(document)
    else:
        if document.etag != etag:
            document.body, document.etag, document.last_modified = body, etag, now
        document.rendered_at = now
        if document.stale_since == seen_stale:
            document.stale_since = None  # a change that came in meanwhile keeps it stale
    db.session.flush()
    return document


def current_document(key: str, *, now: datetime) -> FeedDocument:
    """The stored feed; rendered here when missing, stale for too long or a day old."""
    document = db.session.get(FeedDocument, key)
    if (
        document is None
        or (document.stale_since is not None and document.stale_since <= now - STALE_GRACE)
        or document.rendered_at <= now - MAX_AGE
    ):
        document = store_feed(key, now=now, seen_stale=document.stale_since if document else None)
    return document


def publish_stale_feeds(*, now: datetime, limit: int = 200) -> int:
    """The worker's sweep: render the feeds something changed in (claimed, so that several
    workers share them)."""
    rows = db.session.execute(
        select(FeedDocument.feed_key, FeedDocument.stale_since)
        .where(FeedDocument.stale_since.is_not(None))
        .order_by(FeedDocument.stale_since)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for key, stale_since in rows:
        store_feed(key, now=now, seen_stale=stale_since)
    db.session.flush()
    return len(rows)


# --- staleness -------------------------------------------------------------------------------


def mark_stale(keys: Iterable[str], *, now: datetime) -> None:
    keys = sorted(set(keys))
    for start in range(0, len(keys), 500):
        db.session.execute(
            update(FeedDocument)
            .where(
                FeedDocument.feed_key.in_(keys[start : start + 500]),
                FeedDocument.stale_since.is_(None),
            )
            .values(stale_since=now)
            .execution_options(synchronize_session=False)
        )


def keys_for_series(series_ids: set[int]) -> set[str]:
    """Every feed a change in these series shows up in."""
    if not series_ids:
        return set()
    keys = {f"series:{sid}" for sid in series_ids}
    keys.update(
        f"organizer:{uid}"
        for uid in db.session.scalars(
            select(series_organizer.c.user_id).where(series_organizer.c.series_id.in_(series_ids))
        )
    )
    members = db.session.execute(
        select(Enrollment.user_id, User.unit_id)
        .join(User, User.id == Enrollment.user_id)
        .where(Enrollment.series_id.in_(series_ids))
    ).all()
    keys.update(f"user:{uid}" for uid, _unit in members)
    keys.update(unit_keys({unit for _uid, unit in members if unit}))
    return keys


def unit_keys(unit_ids: set[int]) -> set[str]:
    """The feeds of these units and of every unit above them."""
    if not unit_ids:
        return set()
    parents = dict(db.session.execute(select(Unit.id, Unit.parent_id)).all())
    keys = set()
    for unit_id in unit_ids:
        current = unit_id
        while current is not None and f"unit:{current}" not in keys:
            keys.add(f"unit:{current}")
            current = parents.get(current)
    return keys


def _collect_changes(session: Session, flush_context) -> None:
    """After each flush, note which series (and people) what was written touches."""
    changed = session.info.setdefault(
        "feed_changes", {"series": set(), "users": set(), "speakers": set()}
    )
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, LectureSession | Series | Enrollment):
            series_id = obj.id if isinstance(obj, Series) else obj.series_id
            if series_id is not None:
                changed["series"].add(series_id)
            if isinstance(obj, Enrollment):
                changed["users"].add(obj.user_id)
        elif isinstance(obj, Lecture):
            changed.setdefault("sessions", set()).add(obj.session_id)
        elif isinstance(obj, Speaker):
            changed["speakers"].add(obj.id)


def _apply_changes(session: Session) -> None:
    """Before the commit, mark the affected stored feeds stale (in the same transaction)."""
    changed = session.info.pop("feed_changes", None)
    if not changed or session.info.get("marking_feeds"):
        return
    session.info["marking_feeds"] = True
    try:
        series_ids = set(changed["series"])
        session_ids = changed.get("sessions", set())
        if changed["speakers"]:
            session_ids |= set(
                session.scalars(
                    select(Lecture.session_id)
                    .join(lecture_speaker, lecture_speaker.c.lecture_id == Lecture.id)
                    .where(lecture_speaker.c.speaker_id.in_(changed["speakers"]))
                )
            )
        if session_ids:
            series_ids |= set(
                session.scalars(
                    select(LectureSession.series_id).where(LectureSession.id.in_(session_ids))
                )
            )
        keys = keys_for_series(series_ids) | {f"user:{uid}" for uid in changed["users"]}
        if keys:
            mark_stale(keys, now=utcnow())
    finally:
        session.info.pop("marking_feeds", None)
        session.info.pop("feed_changes", None)


event.listen(Session, "after_flush", _collect_changes)
event.listen(Session, "before_commit", _apply_changes)


# --- fetches ---------------------------------------------------------------------------------


class FetchCounter:
    """Counts feed fetches in memory and writes them in one go every few seconds (after a
    response has gone out), so the feed path never waits for a write."""

    FLUSH_EVERY = timedelta(seconds=10)

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[int, datetime, str]] = {}
        self.last_flush: datetime | None = None

    def record(self, token_id: int, *, now: datetime, user_agent: str) -> bool:
        """Count one fetch; True when it is time to write the counts."""
        with self.lock:
            count, _last, _agent = self.pending.get(token_id, (0, now, ""))
            self.pending[token_id] = (count + 1, now, user_agent[:300])
            if self.last_flush is None:
                self.last_flush = now
            return now - self.last_flush >= self.FLUSH_EVERY or len(self.pending) >= 500

    def flush(self, *, now: datetime | None = None) -> int:
        with self.lock:
            pending, self.pending = self.pending, {}
            self.last_flush = now or utcnow()
        for token_id, (count, last, agent) in pending.items():
            db.session.execute(
                update(FeedToken)
                .where(FeedToken.id == token_id)
                .values(
                    fetch_count=FeedToken.fetch_count + count,
                    last_fetched_at=last,
                    last_user_agent=agent,
                )
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        return len(pending)


fetch_counter = FetchCounter()


def tokens_of(user: User) -> list[FeedToken]:
    return list(
        db.session.scalars(
            select(FeedToken)
            .where(FeedToken.user_id == user.id, FeedToken.revoked_at.is_(None))
            .order_by(FeedToken.id)
        ).all()
    )


def public_series_feed_allowed(series: Series) -> bool:
    return series.visibility == Visibility.PUBLIC and series.status != SeriesStatus.DRAFT


def last_fetches(user_ids: list[int]) -> dict[int, datetime]:
    """When each user's personal feed was last fetched (for organizers)."""
    rows = db.session.execute(
        select(FeedToken.user_id, FeedToken.last_fetched_at).where(
            FeedToken.user_id.in_(user_ids or [-1]),
            FeedToken.kind == FeedKind.PERSONAL,
            FeedToken.last_fetched_at.is_not(None),
        )
    ).all()
    latest: dict[int, datetime] = {}
    for user_id, fetched in rows:
        if user_id not in latest or fetched > latest[user_id]:
            latest[user_id] = fetched
    return latest
