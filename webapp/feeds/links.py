"""Feed links: who may have which feed, and the private links (random, stored hashed,
rotatable, revocable, compared in constant time) that open them."""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from webapp import audit
from webapp.db import db
from webapp.feeds.memory import lookup_cache
from webapp.feeds.models import FeedKind, FeedToken
from webapp.people.models import Unit, User
from webapp.people.units import (
    liaison_unit_ids,
)
from webapp.series.access import (
    can_view_series,
)
from webapp.series.models import (
    Series,
)
from webapp.wakeups import Wake, wake

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
    wake(Wake.TOKENS)  # and every other web process, at the commit
    token.revoked_at = now
    _record_token("feed_token.rotated", token, now)
    db.session.flush()
    return token_for(token.user, token.kind, token.target_id, now=now)


def revoke_token(token: FeedToken, *, now: datetime) -> None:
    """End the link; the calendar app subscribed to it gets 404."""
    lookup_cache.clear()
    wake(Wake.TOKENS)
    token.revoked_at = now
    _record_token("feed_token.revoked", token, now)
    db.session.flush()


def _record_token(action: str, token: FeedToken, now: datetime) -> None:
    audit.record(
        action,
        object_type="feed_token",
        object_id=token.id,
        label=f"{token.user.display_name} · {token.kind}",
        details={"kind": str(token.kind), "target_id": token.target_id},
        now=now,
    )


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
