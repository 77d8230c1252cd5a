"""Accounts: creating them, roles, passwords and logging in with one, preferences."""

import contextlib
from collections.abc import Iterable
from datetime import datetime
from functools import cache

import argon2
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from webapp import audit, events
from webapp.db import db
from webapp.errors import Conflict, InvalidInput
from webapp.people.identifiers import normalise_email, normalise_phone
from webapp.people.logins import end_all_login_sessions
from webapp.people.models import (
    Role,
    Unit,
    User,
    UserRole,
)
from webapp.text import clean_line

MIN_PASSWORD_LENGTH = 8


@cache
def _password_hasher(profile_name: str) -> argon2.PasswordHasher:
    return argon2.PasswordHasher.from_parameters(getattr(argon2.profiles, profile_name))


def password_hasher() -> argon2.PasswordHasher:
    return _password_hasher(current_app.config["PASSWORD_HASH_PROFILE"])


def hash_password(password: str) -> str:
    """Hash a password after checking it is long enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            _("The password must have at least %(count)d characters.", count=MIN_PASSWORD_LENGTH),
            field="password",
        )
    return password_hasher().hash(password)


def set_password(user: User, password: str, *, now: datetime | None = None) -> None:
    """Give the user a new password and end every logged-in session of theirs."""
    user.password_hash = hash_password(password)
    user.login_epoch += 1
    if now is not None:
        end_all_login_sessions(user, now=now)
    db.session.flush()


def set_password_hash(user: User, password_hash: str) -> None:
    """Store an already computed hash (bulk loads reuse one hash for many demo accounts)."""
    user.password_hash = password_hash
    db.session.flush()


def find_user_by_identifier(identifier: str) -> User | None:
    """Find an account by email address or mobile number, as a user would type either."""
    identifier = identifier.strip()
    if not identifier:
        return None
    if "@" in identifier:
        try:
            email = normalise_email(identifier)
        except InvalidInput:
            return None
        return db.session.scalar(select(User).where(User.email == email))
    try:
        phone = normalise_phone(identifier)
    except InvalidInput:
        return None
    return db.session.scalar(select(User).where(User.phone == phone))


def authenticate(identifier: str, password: str, *, now: datetime) -> User | None:
    """Return the active user with these credentials, or None."""
    user = find_user_by_identifier(identifier)
    hasher = password_hasher()
    if user is None or user.password_hash is None or not user.is_active:
        # Spend the same time as a real check, so response times do not reveal accounts.
        _verify_against_dummy(hasher, password)
        return None
    try:
        hasher.verify(user.password_hash, password)
    except argon2.exceptions.VerificationError:
        return None
    except argon2.exceptions.InvalidHashError:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = now
    db.session.flush()
    return user


def _verify_against_dummy(hasher: argon2.PasswordHasher, password: str) -> None:
    dummy = _dummy_hash(current_app.config["PASSWORD_HASH_PROFILE"])
    with contextlib.suppress(argon2.exceptions.VerificationError):
        hasher.verify(dummy, password)


@cache
def _dummy_hash(profile_name: str) -> str:
    return _password_hasher(profile_name).hash("not a real password")


def create_user(
    *,
    display_name: str,
    email: str | None = None,
    phone: str | None = None,
    password: str | None = None,
    roles: Iterable[Role] = (Role.PARTICIPANT,),
    unit: Unit | None = None,
    job_title: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
) -> User:
    """Create an account; it must have an email address or a mobile number, unused so far."""
    display_name = clean_line(display_name)
    if not display_name:
        raise InvalidInput(_("Please enter a name."), field="display_name")
    email = normalise_email(email) if email and email.strip() else None
    phone = normalise_phone(phone) if phone and phone.strip() else None
    if email is None and phone is None:
        raise InvalidInput(_("Please enter an email address or a mobile number."), field="email")
    if email and db.session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(
            _("The email address %(email)s already belongs to an account.", email=email),
            field="email",
        )
    if phone and db.session.scalar(select(User.id).where(User.phone == phone)):
        raise Conflict(
            _("The mobile number %(phone)s already belongs to an account.", phone=phone),
            field="phone",
        )
    user = User(
        display_name=display_name,
        email=email,
        phone=phone,
        unit=unit,
        job_title=job_title,
        locale=locale,
        timezone=timezone,
        role_rows=[UserRole(role=Role(role)) for role in set(roles)],
    )
    if password is not None:
        user.password_hash = hash_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def grant_role(user: User, role: Role) -> None:
    """Give the user a role (no-op when they have it)."""
    if role not in user.roles:
        before = sorted(user.roles)
        user.role_rows.append(UserRole(role=role))
        _record_roles(user, before)
    db.session.flush()


def _record_roles(user: User, before: list) -> None:
    audit.record(
        "user.changed",
        object_type="user",
        object_id=user.id,
        label=user.display_name,
        details={"action": "roles", "changes": {"roles": [before, sorted(user.roles)]}},
    )


def revoke_role(user: User, role: Role) -> None:
    """Take a role away; the last admin cannot lose the admin role."""
    if role == Role.ADMIN and role in user.roles:
        admin_count = db.session.scalar(
            select(func.count()).select_from(UserRole).where(UserRole.role == Role.ADMIN)
        )
        if admin_count <= 1:
            raise Conflict(_("The last administrator cannot lose the administrator role."))
    if role in user.roles:
        before = sorted(user.roles)
        user.role_rows = [row for row in user.role_rows if row.role != role]
        _record_roles(user, before)
    db.session.flush()


def update_preferences(
    user: User,
    *,
    locale: str | None = None,
    email_reminders: bool | None = None,
    feed_alarm_minutes: int | None | object = ...,
    muted_channels: set[str] | None = None,
) -> None:
    """Change what a person chose for themselves (only what is given); their own calendar
    feeds show their language and alarm, so others hear of it."""
    if locale is not None:
        user.locale = locale
    if email_reminders is not None:
        user.email_reminders = email_reminders
    if feed_alarm_minutes is not ...:
        user.feed_alarm_minutes = feed_alarm_minutes or None
    if muted_channels is not None:
        user.muted_channels = ",".join(sorted(muted_channels)) or None
    db.session.flush()
    events.preferences_changed.send(user_id=user.id)


def list_users() -> list[User]:
    """Return every account with its unit, for the admin list."""
    return list(
        db.session.scalars(select(User).options(selectinload(User.unit)).order_by(User.id)).all()
    )


def count_people() -> dict[str, int]:
    """Return how many accounts and units there are."""
    return {
        "users": db.session.scalar(select(func.count()).select_from(User)),
        "units": db.session.scalar(select(func.count()).select_from(Unit)),
    }


# --- log-in sessions and attempts ---------------------------------------------------------


def check_password(user: User, password: str) -> bool:
    """Whether the password is the user's current one."""
    if user.password_hash is None:
        return False
    try:
        return password_hasher().verify(user.password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False
