"""Getting in: one-time log-in links, log-in sessions (ended on a password change or a
log-out everywhere) and the limits on failed attempts."""

import contextlib
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from webapp.bounds import MAX_ID
from webapp.db import db
from webapp.errors import InvalidInput
from webapp.people.identifiers import normalise_email, normalise_phone
from webapp.people.models import (
    LoginAttempt,
    LoginSession,
    LoginToken,
    User,
)
from webapp.text import clean_line


def load_user_for_session(session_id: str) -> User | None:
    """Resolve the id stored in the login cookie: the account, its login epoch (raised by a
    password change) and the device's log-in session, which must not have ended."""
    user_id, epoch, token = ([*session_id.split(".", 2), "", ""])[:3]
    if not (user_id.isdigit() and epoch.isdigit() and token) or int(user_id) > MAX_ID:
        return None
    row = db.session.execute(
        select(User, LoginSession.id)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(
            User.id == int(user_id),
            LoginSession.token_hash == _session_hash(token),
            LoginSession.ended_at.is_(None),
        )
    ).first()
    if row is None:
        return None
    user = row[0]
    if not user.is_active or user.login_epoch != int(epoch):
        return None
    user.login_session_token = token
    return user


LOGIN_LINK_LIFETIME = timedelta(days=14)


def _token_digest(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def issue_login_token(user: User, *, now: datetime) -> str:
    """Give the user a new one-time log-in link token (older unused ones stop working)."""
    db.session.execute(
        delete(LoginToken).where(LoginToken.user_id == user.id, LoginToken.used_at.is_(None))
    )
    raw_token = secrets.token_urlsafe(32)  # 256 bits
    db.session.add(
        LoginToken(
            user_id=user.id,
            token_hash=_token_digest(raw_token),
            expires_at=now + LOGIN_LINK_LIFETIME,
            created_at=now,
        )
    )
    db.session.flush()
    return raw_token


def redeem_login_token(raw_token: str, *, now: datetime) -> User | None:
    """Use a log-in link: the active user it belongs to, once, before it expires."""
    if not raw_token or len(raw_token) > 100:
        return None
    token = db.session.scalar(
        select(LoginToken).where(LoginToken.token_hash == _token_digest(raw_token))
    )
    # The lookup is by a hash of 256 random bits; a final constant-time comparison keeps
    # the check independent of how the database compares strings.
    if token is None or not hmac.compare_digest(token.token_hash, _token_digest(raw_token)):
        return None
    if token.used_at is not None or token.expires_at <= now or not token.user.is_active:
        return None
    token.used_at = now
    token.user.last_login_at = now
    db.session.flush()
    return token.user


LOGIN_FREE_FAILURES = {"account": 5, "address": 20}  # failures before delays begin


LOGIN_MAX_LOCK = timedelta(minutes=15)


LOGIN_FAILURES_FORGOTTEN = timedelta(hours=1)  # a quiet hour starts the count afresh


def _attempt_keys(identifier: str, address: str | None) -> list[tuple[str, str]]:
    """The counters a log-in attempt touches: the account name as typed (normalised, so
    `139 1000 0001` and `+8613910000001` count together, whether or not an account has
    it) and the client address."""
    name = clean_line(identifier or "").lower()
    with contextlib.suppress(InvalidInput):
        name = normalise_email(name) if "@" in name else normalise_phone(name)
    keys = [("account", f"account:{name[:250]}")]
    if address:
        keys.append(("address", f"address:{address[:250]}"))
    return keys


def login_locked_until(identifier: str, address: str | None, *, now: datetime) -> datetime | None:
    """When the next log-in attempt may be made, if it may not be made now."""
    keys = [key for _kind, key in _attempt_keys(identifier, address)]
    until = db.session.scalar(
        select(func.max(LoginAttempt.locked_until)).where(LoginAttempt.key.in_(keys))
    )
    return until if until is not None and until > now else None


def record_login_failure(identifier: str, address: str | None, *, now: datetime) -> None:
    """Count a failed attempt; past the free ones, each failure locks for twice as long
    (30 s, 1 min, 2 min … at most LOGIN_MAX_LOCK)."""
    for kind, key in _attempt_keys(identifier, address):
        attempt = db.session.get(LoginAttempt, key)
        if attempt is None:
            attempt = LoginAttempt(key=key, failures=0, last_failed_at=now)
            db.session.add(attempt)
        elif attempt.last_failed_at < now - LOGIN_FAILURES_FORGOTTEN:
            attempt.failures, attempt.locked_until = 0, None
        attempt.failures += 1
        attempt.last_failed_at = now
        over = attempt.failures - LOGIN_FREE_FAILURES[kind]
        if over >= 0:
            attempt.locked_until = now + min(timedelta(seconds=30 * 2**over), LOGIN_MAX_LOCK)
    db.session.flush()


def clear_login_failures(identifier: str, *, now: datetime) -> None:
    """A successful log-in forgives the account's failures (not the address's)."""
    keys = [key for kind, key in _attempt_keys(identifier, None) if kind == "account"]
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.key.in_(keys)))
    db.session.flush()


def _session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def begin_login_session(user: User, *, now: datetime) -> str:
    """Start a log-in on one device; the returned token goes into the cookie."""
    token = secrets.token_urlsafe(32)
    db.session.add(LoginSession(user_id=user.id, token_hash=_session_hash(token), created_at=now))
    db.session.flush()
    return token


def end_login_session(token: str | None, *, now: datetime) -> None:
    """Log one device out on the server: a copy of its cookie stops working."""
    if not token:
        return
    db.session.execute(
        update(LoginSession)
        .where(LoginSession.token_hash == _session_hash(token), LoginSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    db.session.flush()


def end_all_login_sessions(user: User, *, now: datetime) -> None:
    db.session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    db.session.flush()
