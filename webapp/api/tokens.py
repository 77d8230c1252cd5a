"""Personal API tokens: random, shown once, stored only as a hash; scoped to reading or to
reading and writing; expiring; revocable; their last use recorded.

A request to /api/v1 is authenticated by `Authorization: Bearer <token>` alone (never by the
session cookie, so no other site can make a signed-in browser call the API, and the API
needs no CSRF token). The token's owner is then the request's user: the same permission
rules apply to them as on the pages.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from flask import g, request
from flask_babel import gettext as _
from flask_login import AnonymousUserMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp import audit
from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.errors import InvalidInput
from webapp.people.models import Role, User
from webapp.text import LineText, clean_line

PREFIX = "ykt_"
MAX_DAYS = 366
# The last use is written at most this often per token, not on every request.
LAST_USE_EVERY = timedelta(minutes=1)


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"  # read and write


class ApiToken(db.Model):
    """One personal API token; only the SHA-256 of the secret is kept."""

    __tablename__ = "api_token"
    __table_args__ = (sa.CheckConstraint("expires_at > created_at", name="expires_after_creation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(LineText(100))
    scope: Mapped[Scope] = mapped_column(checked_enum(Scope, "api_scope"))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    hint: Mapped[str] = mapped_column(sa.String(12))  # the first characters, to recognise it
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_used_from: Mapped[str | None] = mapped_column(sa.String(64))

    user: Mapped[User] = relationship()

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def may_have_tokens(user: User) -> bool:
    """Organizers and admins use the API; participants have nothing to integrate."""
    return user.is_admin or user.has_role(Role.ORGANIZER)


def create_token(
    user: User, *, name: str, scope: Scope, days: int, now: datetime
) -> tuple[ApiToken, str]:
    """A new token for the user; returns it with its secret, which is never shown again."""
    name = clean_line(name) or ""
    if not name:
        raise InvalidInput(_("Give the token a name, e.g. what will use it."), field="name")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(_("A token lasts from 1 to 366 days."), field="days")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        scope=scope,
        token_hash=_hash(secret),
        hint=secret[: len(PREFIX) + 4],
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.session.add(token)
    db.session.flush()
    _record("api_token.created", token, now, {"scope": str(scope), "days": days})
    return token, secret


def revoke_token(token: ApiToken, *, now: datetime) -> None:
    """End the token: the next request with it gets 401."""
    if token.revoked_at is None:
        token.revoked_at = now
        _record("api_token.revoked", token, now, {})
    db.session.flush()


def _record(action: str, token: ApiToken, now: datetime, details: dict) -> None:
    audit.record(
        action,
        object_type="api_token",
        object_id=token.id,
        label=f"{token.user.display_name} · {token.name} ({token.hint}…)",
        details=details,
        now=now,
    )


def tokens_of(user: User) -> list[ApiToken]:
    return list(
        db.session.scalars(
            sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


class AnonymousCaller(AnonymousUserMixin):
    """An API request without a usable token (no roles, no locale)."""

    locale = None
    timezone = None

    def has_role(self, _role) -> bool:
        return False

    is_admin = False


def bearer_secret() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _space, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip() or len(secret) > 200:
        return None
    return secret.strip()


def authenticate_request(*, now: datetime | None = None) -> ApiToken | None:
    """Find the request's token and make its owner the request's user (Flask-Login reads
    `g._login_user`), whatever cookie came along. Returns the token, or None (then the
    request is anonymous)."""
    now = now or utcnow()
    g.api_token = None
    g._login_user = AnonymousCaller()
    secret = bearer_secret()
    if secret is None:
        return None
    digest = _hash(secret)
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == digest))
    # The lookup is by the hash's index; compare again in constant time all the same.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if not token.is_usable(now) or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USE_EVERY:
        db.session.execute(
            sa.update(ApiToken)
            .where(ApiToken.id == token.id)
            .values(last_used_at=now, last_used_from=(request.remote_addr or "")[:64])
        )
        db.session.commit()
    g.api_token = token
    g._login_user = token.user
    g.audit_actor = audit.Actor(token.user.id, token.user.display_name, audit.Via.API)
    return token


def current_token() -> ApiToken | None:
    return g.get("api_token")
