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
    found = _lookup(digest, now=now)
    if found is not None and found[1] is not None:
        lookup_cache.put(digest, found, ttl=current_app.config["FEED_LOOKUP_CACHE_SECONDS"])
    return found


def needs_rendering(stale_since: datetime | None, rendered_at: datetime, *, now: datetime) -> bool:
    """A request renders a stored feed itself when it has been stale for longer than the
    worker should take (STALE_GRACE) or was rendered more than a day ago (MAX_AGE)."""
    return (stale_since is not None and stale_since <= now - STALE_GRACE) or (
        rendered_at <= now - MAX_AGE
    )


def _lookup(digest: str, *, now: datetime) -> tuple[TokenMatch, FeedMeta | None] | None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(_lookup_statement(), {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    match = TokenMatch(row.id, row.key, row.user_id)
    if row.etag is None:
        return match, None
    if needs_rendering(row.stale_since, row.rendered_at, now=now):
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
