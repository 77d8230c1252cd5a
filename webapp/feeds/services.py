"""Feeds: who may have which feed, private links, rendering and storing feed documents,
marking them stale when something in them changes, and counting fetches."""

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import String, bindparam, case, cast, literal, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from webapp.calendar.ical import (
    render_event,
)
from webapp.db import db, utcnow
from webapp.errors import DomainError
from webapp.feeds.builder import (
    FeedHeader,
    assemble,
    etag_for,
    with_alarm,
)
from webapp.feeds.models import EventFragment, FeedDocument, FeedKind, FeedToken
from webapp.people.models import Unit, User
from webapp.people.services import unit_and_descendant_ids
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    Visibility,
    series_organizer,
)
from webapp.series.services import (
    can_view_series,
    liaison_unit_ids,
)
from webapp.sessions.models import Lecture, LectureSession, SessionStatus
from webapp.urls import public_url

log = logging.getLogger(__name__)


class FeedUnavailable(DomainError):
    status_code = 503


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
    # One series on its own: those the user holds a link for (made from the series page).
    feeds.extend(
        (FeedKind.SERIES, series_id)
        for series_id in db.session.scalars(
            select(FeedToken.target_id)
            .where(
                FeedToken.user_id == user.id,
                FeedToken.kind == FeedKind.SERIES,
                FeedToken.revoked_at.is_(None),
            )
            .order_by(FeedToken.target_id)
        )
    )
    return feeds


def may_have(user: User, kind: FeedKind, target_id: int | None) -> bool:
    if kind in (FeedKind.SERIES, FeedKind.UNIT) and target_id is None:
        return False
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
    lookup_cache.clear()
    token.revoked_at = now
    db.session.flush()
    return token_for(token.user, token.kind, token.target_id, now=now)


def revoke_token(token: FeedToken, *, now: datetime) -> None:
    """End the link; the calendar app subscribed to it gets 404."""
    lookup_cache.clear()
    token.revoked_at = now
    db.session.flush()


@dataclass(frozen=True)
class TokenMatch:
    id: int
    key: str
    user_id: int | None = None


def still_allowed(match: TokenMatch) -> bool:
    """Whether the link's owner may still see what the feed shows: a series or unit feed (or
    an organizer's) stops as soon as its owner loses access, and works again if it returns.
    A personal feed shows only the owner's own schedule, so it needs no check."""
    kind, _sep, ident = match.key.partition(":")
    if kind == "user":
        return True
    user = db.session.get(User, match.user_id) if match.user_id is not None else None
    if user is None or not user.is_active:
        return False
    feed_kind = FeedKind(kind)
    target = None if feed_kind == FeedKind.ORGANIZER else int(ident)
    return may_have(user, feed_kind, target)


def match_token(raw: str) -> TokenMatch | None:
    """The feed an active link points to, in one query (the feed path's hot half)."""
    if not raw or len(raw) > 100:
        return None
    digest = _hash(raw)
    row = db.session.execute(
        select(
            FeedToken.id,
            FeedToken.token_hash,
            FeedToken.kind,
            FeedToken.user_id,
            FeedToken.target_id,
        )
        .join(User, User.id == FeedToken.user_id)
        .where(
            FeedToken.token_hash == digest, FeedToken.revoked_at.is_(None), User.is_active.is_(True)
        )
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return TokenMatch(
        row.id, feed_key(row.kind, user_id=row.user_id, target_id=row.target_id), row.user_id
    )


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


def _feed_series_ids(key: str):
    """A subquery of the series whose sessions a feed holds."""
    kind, _sep, ident = key.partition(":")
    target = int(ident)
    if kind == "user":
        return select(Enrollment.series_id).where(
            Enrollment.user_id == target, Enrollment.status == EnrollmentStatus.ENROLLED
        )
    if kind == "organizer":
        return select(series_organizer.c.series_id).where(series_organizer.c.user_id == target)
    if kind == "series":
        return select(Series.id).where(Series.id == target)
    if kind == "unit":
        unit = db.session.get(Unit, target)
        unit_ids = unit_and_descendant_ids(unit) if unit else []
        return (
            select(Enrollment.series_id)
            .join(User, User.id == Enrollment.user_id)
            .where(User.unit_id.in_(unit_ids), Enrollment.status == EnrollmentStatus.ENROLLED)
        )
    raise ValueError(key)


def _feed_rows(key: str, *, now: datetime):
    """(session id, start, zone, stored fragment or None) for every event of a feed."""
    return _rows_in(_feed_series_ids(key), now=now)


def _rows_in(series_ids, *, now: datetime):
    return db.session.execute(
        select(LectureSession.id, LectureSession.starts_at, Series.timezone, EventFragment.body)
        .join(Series, Series.id == LectureSession.series_id)
        .outerjoin(EventFragment, EventFragment.session_id == LectureSession.id)
        .where(
            LectureSession.series_id.in_(series_ids),
            Series.status != SeriesStatus.DRAFT,
            LectureSession.published_at.is_not(None),
            or_(
                LectureSession.status != SessionStatus.CANCELLED,
                LectureSession.ends_at > now - CANCELLED_KEPT,
            ),
        )
        .order_by(LectureSession.starts_at, LectureSession.id)
    ).all()


def feed_sessions(key: str, *, now: datetime) -> list[LectureSession]:
    """The sessions a feed holds, loaded with what rendering them needs."""
    ids = [row[0] for row in _feed_rows(key, now=now)]
    return _load_sessions(ids)


def _load_sessions(ids: list[int]) -> list[LectureSession]:
    if not ids:
        return []
    sessions = db.session.scalars(
        select(LectureSession)
        .where(LectureSession.id.in_(ids))
        .options(
            selectinload(LectureSession.series).selectinload(Series.organizers),
            selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
        )
    ).all()
    order = {session_id: index for index, session_id in enumerate(ids)}
    return sorted(sessions, key=lambda session: order[session.id])


def user_header(user: User, *, organizer: bool = False) -> FeedHeader:
    """A person's feed is named and zoned for them, in their language."""
    with force_locale(user.locale or current_app.config["DEFAULT_LOCALE"]):
        name = (
            _("Yunketang · series I organize")
            if organizer
            else _("Yunketang · %(name)s's schedule", name=user.display_name)
        )
    return FeedHeader(name=name, timezone=user.timezone or current_app.config["DEFAULT_TIMEZONE"])


def feed_header(key: str) -> tuple[FeedHeader, User | None]:
    kind, _sep, ident = key.partition(":")
    default_zone = current_app.config["DEFAULT_TIMEZONE"]
    if kind in ("user", "organizer"):
        user = db.session.get(User, int(ident))
        return user_header(user, organizer=kind == "organizer"), user
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
    return {s.id: public_url("sessions.detail", session_id=s.id) for s in sessions}


def render_fragments(ids: list[int]) -> dict[int, bytes]:
    """Render the VEVENTs that have no stored fragment (the library runs only here)."""
    sessions = _load_sessions(ids)
    urls = _page_urls(sessions)
    rendered = {}
    for session in sessions:
        body = render_event(session, page_url=urls[session.id])
        db.session.merge(EventFragment(session_id=session.id, version="1", body=body))
        rendered[session.id] = body
    return rendered


def render_feed(key: str, *, now: datetime) -> bytes:
    """The whole feed: stored fragments, the few missing ones rendered, cached zones."""
    header, user = feed_header(key)
    rows = _complete(_feed_rows(key, now=now))
    alarm = user.feed_alarm_minutes if user is not None and key.startswith("user:") else None
    return _assemble_rows(header, rows, alarm)


def _complete_alone(rows) -> list[tuple] | Exception:
    """_complete() in a savepoint; the error instead of the rows when rendering failed."""
    try:
        with db.session.begin_nested():
            return _complete(rows)
    except SQLAlchemyError:
        raise
    except Exception as error:
        return error


def _complete(rows) -> list[tuple]:
    """Rows with every fragment present (the missing ones rendered now)."""
    missing = [row[0] for row in rows if row[3] is None]
    fresh = render_fragments(missing) if missing else {}
    return [(r[0], r[1], r[2], r[3] if r[3] is not None else fresh[r[0]]) for r in rows]


def _assemble_rows(header: FeedHeader, rows: list[tuple], alarm: int | None) -> bytes:
    fragments = [row[3] for row in rows]
    if alarm:
        fragments = [with_alarm(f, alarm, header.name) for f in fragments]
    return assemble(header, [(row[2], row[1].year) for row in rows], fragments)


# --- stored documents ------------------------------------------------------------------------


def store_feed(key: str, *, now: datetime, seen_stale: datetime | None = None) -> FeedDocument:
    """Render a feed and keep it; the ETag and Last-Modified change only with the content."""
    lookup_cache.clear()  # this process sees the new version at once; others within 1 s
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
    document.failed_at = document.publish_error = None
    db.session.flush()
    return document


def _store_alone(key: str, *, now: datetime, seen_stale: datetime | None) -> bool:
    """Render one feed in a savepoint: a feed whose content makes rendering fail is marked
    failed (its last good version stays served) and does not stop the others."""
    try:
        with db.session.begin_nested():
            store_feed(key, now=now, seen_stale=seen_stale)
    except SQLAlchemyError:
        raise
    except Exception as error:
        mark_failed([key], error, now=now)
        return False
    return True


def mark_failed(keys: list[str], error: Exception, *, now: datetime) -> None:
    """Record that these feeds could not be rendered; they are no longer picked up as stale
    (so the sweep does not spin on them) until an admin retries them."""
    log.exception("feed %s could not be rendered", ", ".join(keys))
    db.session.execute(
        update(FeedDocument)
        .where(FeedDocument.feed_key.in_(keys))
        .values(
            stale_since=None, failed_at=now, publish_error=f"{type(error).__name__}: {error}"[:2000]
        )
        .execution_options(synchronize_session=False)
    )


def failed_feeds(limit: int = 50) -> list[FeedDocument]:
    """Feeds whose last render failed, newest first (for /admin/status)."""
    return list(
        db.session.scalars(
            select(FeedDocument)
            .where(FeedDocument.failed_at.is_not(None))
            .order_by(FeedDocument.failed_at.desc())
            .limit(limit)
        )
    )


def retry_failed_feeds(*, now: datetime) -> int:
    """Mark every failed feed stale again, so the worker tries it once more."""
    result = db.session.execute(
        update(FeedDocument)
        .where(FeedDocument.failed_at.is_not(None))
        .values(stale_since=now, failed_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


@dataclass(frozen=True)
class FeedMeta:
    key: str
    etag: str
    last_modified: datetime


class BodyCache:
    """Feed bodies kept in memory by ETag (bounded), so serving a feed reads a small row
    rather than the whole document from the database on every poll."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self.size = 0
        self.items: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str, etag: str) -> bytes | None:
        with self.lock:
            item = self.items.get(key)
            if item is None or item[0] != etag:
                return None
            self.items.move_to_end(key)
            return item[1]

    def put(self, key: str, etag: str, body: bytes) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.size -= len(old[1])
            self.items[key] = (etag, body)
            self.size += len(body)
            while self.size > self.max_bytes and self.items:
                _key, (_etag, dropped) = self.items.popitem(last=False)
                self.size -= len(dropped)


body_cache = BodyCache()


def _key_expression():
    """The feed key of a token, in SQL (the same rule as feed_key())."""
    user = cast(FeedToken.user_id, String)
    target = cast(FeedToken.target_id, String)
    return case(
        (FeedToken.kind == FeedKind.PERSONAL, literal("user:") + user),
        (FeedToken.kind == FeedKind.ORGANIZER, literal("organizer:") + user),
        (FeedToken.kind == FeedKind.SERIES, literal("series:") + target),
        else_=literal("unit:") + target,
    )


@lru_cache(maxsize=1)
def _lookup_statement():
    """Built once: constructing the statement costs more than running it."""
    key = _key_expression()
    return (
        select(
            FeedToken.id,
            FeedToken.token_hash,
            FeedToken.user_id,
            key.label("key"),
            FeedDocument.etag,
            FeedDocument.last_modified,
            FeedDocument.stale_since,
            FeedDocument.rendered_at,
        )
        .join(User, User.id == FeedToken.user_id)
        .outerjoin(FeedDocument, FeedDocument.feed_key == key)
        .where(
            FeedToken.token_hash == bindparam("digest"),
            FeedToken.revoked_at.is_(None),
            User.is_active.is_(True),
        )
    )


class LookupCache:
    """Remembers each feed lookup for one second, so a feed polled many times at once (a
    public series, a calendar service fetching for many people, retries) costs one query a
    second. A revoked link or a re-rendered feed is seen within that second."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[float, object]] = {}

    def get(self, digest: str):
        with self.lock:
            entry = self.entries.get(digest)
            if entry is None or entry[0] < time.monotonic():
                return None
            return entry[1]

    def put(self, digest: str, value, *, ttl: float) -> None:
        if ttl <= 0:
            return
        with self.lock:
            if len(self.entries) > 10_000:
                self.entries.clear()
            self.entries[digest] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


lookup_cache = LookupCache()


def lookup_feed(raw: str, *, now: datetime) -> tuple[TokenMatch, FeedMeta | None] | None:
    """The feed path's one query: the token (active, its owner active) and the stored feed's
    ETag and dates, read outside a transaction. The FeedMeta is None when the feed must be
    rendered first."""
    if not raw or len(raw) > 100:
        return None
    digest = _hash(raw)
    cached = lookup_cache.get(digest)
    if cached is not None:
        return cached
    found = _lookup(digest, now=now)
    if found is not None and found[1] is not None:
        lookup_cache.put(digest, found, ttl=current_app.config["FEED_LOOKUP_CACHE_SECONDS"])
    return found


def _lookup(digest: str, *, now: datetime) -> tuple[TokenMatch, FeedMeta | None] | None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(_lookup_statement(), {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    match = TokenMatch(row.id, row.key, row.user_id)
    if row.etag is None:
        return match, None
    if (row.stale_since is not None and row.stale_since <= now - STALE_GRACE) or (
        row.rendered_at <= now - MAX_AGE
    ):
        return match, None
    return match, FeedMeta(row.key, row.etag, row.last_modified)


def fresh_feed_meta(key: str, *, now: datetime) -> tuple[FeedMeta, bool]:
    """The feed's ETag and date, rendering it first when needed; True when it rendered
    (the caller commits then)."""
    row = db.session.execute(
        select(
            FeedDocument.etag,
            FeedDocument.last_modified,
            FeedDocument.stale_since,
            FeedDocument.rendered_at,
        ).where(FeedDocument.feed_key == key)
    ).first()
    if (
        row is None
        or (row.stale_since is not None and row.stale_since <= now - STALE_GRACE)
        or row.rendered_at <= now - MAX_AGE
    ):
        if _store_alone(key, now=now, seen_stale=row.stale_since if row else None):
            document = db.session.get(FeedDocument, key)
            body_cache.put(key, document.etag, document.body)
            return FeedMeta(key, document.etag, document.last_modified), True
        if row is None:
            raise FeedUnavailable(_("This calendar cannot be shown right now."))
        return FeedMeta(key, row.etag, row.last_modified), True  # the last good version
    return FeedMeta(key, row.etag, row.last_modified), False


def feed_body(meta: FeedMeta) -> bytes:
    """The stored feed's bytes, from memory when this process has them."""
    body = body_cache.get(meta.key, meta.etag)
    if body is None:
        body = db.session.scalar(select(FeedDocument.body).where(FeedDocument.feed_key == meta.key))
        body_cache.put(meta.key, meta.etag, body)
    return body


def current_document(key: str, *, now: datetime) -> FeedDocument:
    """The stored feed; rendered here when missing, stale for too long or a day old."""
    fresh_feed_meta(key, now=now)
    return db.session.get(FeedDocument, key)


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
    if rows:
        lookup_cache.clear()
    personal = {int(key[5:]): stale for key, stale in rows if key.startswith("user:")}
    for key, stale_since in rows:
        if not key.startswith("user:"):
            _store_alone(key, now=now, seen_stale=stale_since)
    if personal:
        _publish_personal(personal, now=now)
    db.session.flush()
    return len(rows)


def _publish_personal(stale: dict[int, datetime], *, now: datetime) -> None:
    """Re-render many personal feeds at once: participants of the same series share one
    query for their events; each feed differs only in its header (name, zone, alarm)."""
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(stale)))}
    series_of: dict[int, set[int]] = {uid: set() for uid in stale}
    for user_id, series_id in db.session.execute(
        select(Enrollment.user_id, Enrollment.series_id).where(
            Enrollment.user_id.in_(stale), Enrollment.status == EnrollmentStatus.ENROLLED
        )
    ):
        series_of[user_id].add(series_id)
    documents = {
        d.feed_key: d
        for d in db.session.scalars(
            select(FeedDocument).where(FeedDocument.feed_key.in_([f"user:{u}" for u in stale]))
        )
    }
    rows_cache: dict[frozenset, list[tuple] | Exception] = {}
    params = []
    for user_id, seen in stale.items():
        user = users.get(user_id)
        document = documents.get(f"user:{user_id}")
        if user is None or document is None:
            continue
        group = frozenset(series_of[user_id])
        try:
            if group not in rows_cache:
                rows_cache[group] = _complete_alone(_rows_in(sorted(group) or [-1], now=now))
            if isinstance(rows_cache[group], Exception):
                raise rows_cache[group]
            body = _assemble_rows(user_header(user), rows_cache[group], user.feed_alarm_minutes)
        except SQLAlchemyError:
            raise
        except Exception as error:
            mark_failed([document.feed_key], error, now=now)
            continue
        etag = etag_for(body)
        changed = etag != document.etag
        params.append(
            {
                "k": document.feed_key,
                "b": body if changed else document.body,
                "e": etag,
                "m": now if changed else document.last_modified,
                "r": now,
                "seen": seen,
            }
        )
    if not params:
        return
    table = FeedDocument.__table__
    statement = (
        update(table)
        .where(table.c.feed_key == bindparam("k"))
        .values(
            body=bindparam("b"),
            etag=bindparam("e"),
            last_modified=bindparam("m"),
            rendered_at=bindparam("r"),
            # A change that came in while rendering leaves the feed stale for the next sweep.
            stale_since=case(
                (table.c.stale_since == bindparam("seen"), None), else_=table.c.stale_since
            ),
            failed_at=None,
            publish_error=None,
        )
    )
    db.session.execute(statement, params)


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
