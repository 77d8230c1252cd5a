"""Serving a stored feed: one small query per token (remembered for a second), the body
from memory by ETag, a stale or missing document rendered on the spot."""

import hmac
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import String, bindparam, case, cast, literal, select

from webapp.db import db
from webapp.feeds.fetches import public_series_feed_allowed
from webapp.feeds.invalidation import ensure_listening
from webapp.feeds.links import TokenMatch, _hash
from webapp.feeds.memory import body_cache, lookup_cache
from webapp.feeds.models import FeedDocument, FeedKind, FeedToken
from webapp.feeds.services import (
    MAX_AGE,
    STALE_GRACE,
    FeedUnavailable,
    _store_alone,
)
from webapp.people.models import User
from webapp.series.models import Series

# --- serving -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedMeta:
    key: str
    etag: str
    last_modified: datetime


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
    ensure_listening(current_app._get_current_object())
    found, fresh = _lookup(digest, now=now)
    if found is not None and found[1] is not None:
        lookup_cache.put(digest, found, ttl=_ttl(fresh))
    return found


def _ttl(fresh: bool) -> float:
    """How long to remember a lookup: long while notifications keep it true, unless the feed
    is stale (a request renders it itself once the grace period is over)."""
    configured = current_app.config["FEED_LOOKUP_CACHE_SECONDS"]
    return lookup_cache.ttl(configured) if fresh else configured


def needs_rendering(stale_since: datetime | None, rendered_at: datetime, *, now: datetime) -> bool:
    """A request renders a stored feed itself when it has been stale for longer than the
    worker should take (STALE_GRACE) or was rendered more than a day ago (MAX_AGE)."""
    return (stale_since is not None and stale_since <= now - STALE_GRACE) or (
        rendered_at <= now - MAX_AGE
    )


Found = tuple[TokenMatch, FeedMeta | None] | None


def _lookup(digest: str, *, now: datetime) -> tuple[Found, bool]:
    """(the token's feed and its validators, or None; whether the stored feed is fresh)."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(_lookup_statement(), {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None, False
    match = TokenMatch(row.id, row.key, row.user_id)
    if row.etag is None or needs_rendering(row.stale_since, row.rendered_at, now=now):
        return (match, None), False
    return (match, FeedMeta(row.key, row.etag, row.last_modified)), row.stale_since is None


@lru_cache(maxsize=1)
def _public_statement():
    return (
        select(
            Series.visibility,
            Series.status,
            Series.title,
            FeedDocument.etag,
            FeedDocument.last_modified,
            FeedDocument.stale_since,
            FeedDocument.rendered_at,
        )
        .outerjoin(FeedDocument, FeedDocument.feed_key == bindparam("key"))
        .where(Series.id == bindparam("series_id"))
    )


def public_feed_meta(series_id: int, *, now: datetime) -> tuple[FeedMeta | None, str, bool]:
    """A public series feed's validators and title, remembered like a private feed's: (None
    when the series has no public feed; True when this request rendered it: commit then)."""
    memory_key = f"series:{series_id}"
    cached = lookup_cache.get(memory_key)
    if cached is not None:
        return *cached, False
    ensure_listening(current_app._get_current_object())
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(
            _public_statement(), {"series_id": series_id, "key": memory_key}
        ).first()
    if row is None or not public_series_feed_allowed(row.visibility, row.status):
        return None, "", False
    if row.etag is None or needs_rendering(row.stale_since, row.rendered_at, now=now):
        meta, rendered = fresh_feed_meta(memory_key, now=now)
        return meta, row.title, rendered
    meta = FeedMeta(memory_key, row.etag, row.last_modified)
    lookup_cache.put(memory_key, (meta, row.title), ttl=_ttl(row.stale_since is None))
    return meta, row.title, False


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
    if row is None or needs_rendering(row.stale_since, row.rendered_at, now=now):
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
