"""Six-digit codes sent by SMS to sign in (验证码登录) or to set a new password.

A code lives five minutes and allows five tries; asking again ends the older code. Asking
is limited per number (one a minute, five an hour) and per client address (twenty an
hour), whether or not the number has an account, and the answer is worded the same either
way: nobody learns from it who is registered. Only an HMAC of the code is stored."""

import hashlib
import hmac
import math
import secrets
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from webapp.db import db
from webapp.errors import InvalidInput
from webapp.people.identifiers import normalise_phone
from webapp.people.models import LoginCode, LoginCodePurpose, User

CODE_LIFETIME = timedelta(minutes=5)
MAX_TRIES = 5
PER_NUMBER = ((timedelta(minutes=1), 1), (timedelta(hours=1), 5))
PER_CLIENT = ((timedelta(hours=1), 20),)


class TooManyCodes(InvalidInput):
    """Asked too often; `retry_in` says when asking again will work."""

    def __init__(self, message: str, retry_in: timedelta):
        super().__init__(message, field="phone")
        self.retry_in = retry_in


def _digest(phone: str, code: str) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def _check_limits(column, value: str, limits, *, now: datetime) -> None:
    for window, most in limits:
        times = list(
            db.session.scalars(
                select(LoginCode.created_at)
                .where(column == value, LoginCode.created_at > now - window)
                .order_by(LoginCode.created_at)
            )
        )
        if len(times) >= most:
            retry_in = times[-most] + window - now
            minutes = max(1, math.ceil(retry_in.total_seconds() / 60))
            raise TooManyCodes(
                _(
                    "Too many codes were asked for. Please try again in %(minutes)d minutes.",
                    minutes=minutes,
                ),
                retry_in,
            )


def issue_code(
    raw_phone: str, purpose: LoginCodePurpose, *, client: str, now: datetime
) -> tuple[LoginCode, str | None]:
    """A new code for the number: (its row, the code to send, or None when no active
    account has this number: nothing is sent, but the row counts toward the limits)."""
    phone = normalise_phone(raw_phone)
    _check_limits(LoginCode.phone, phone, PER_NUMBER, now=now)
    _check_limits(LoginCode.client, client[:64], PER_CLIENT, now=now)
    user = db.session.scalar(select(User).where(User.phone == phone, User.is_active.is_(True)))
    db.session.execute(
        update(LoginCode)
        .where(
            LoginCode.phone == phone,
            LoginCode.purpose == purpose,
            LoginCode.used_at.is_(None),
        )
        .values(tries=MAX_TRIES)
    )
    code = f"{secrets.randbelow(10**6):06d}" if user is not None else None
    row = LoginCode(
        phone=phone,
        user_id=user.id if user else None,
        purpose=purpose,
        code_hash=_digest(phone, code or secrets.token_hex(8)),
        client=client[:64],
        expires_at=now + CODE_LIFETIME,
        created_at=now,
    )
    db.session.add(row)
    db.session.flush()
    return row, code


def redeem_code(
    raw_phone: str, code: str, purpose: LoginCodePurpose, *, now: datetime
) -> User | None:
    """The active account the code signs in, once; None for a wrong, used, expired or
    worn-out code (five tries), or a number without an account: all alike."""
    try:
        phone = normalise_phone(raw_phone)
    except InvalidInput:
        return None
    row = db.session.scalar(
        select(LoginCode)
        .where(
            LoginCode.phone == phone,
            LoginCode.purpose == purpose,
            LoginCode.used_at.is_(None),
            LoginCode.expires_at > now,
        )
        .order_by(LoginCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if row is None or row.tries >= MAX_TRIES:
        return None
    row.tries += 1
    candidate = (code or "").strip()[:12]
    if not hmac.compare_digest(row.code_hash, _digest(phone, candidate)) or row.user_id is None:
        db.session.flush()
        return None
    user = db.session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.used_at = now
    user.last_login_at = now
    db.session.flush()
    return user
