"""Accounts, roles, units and speakers: every rule about people lives here."""

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

import argon2
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import selectinload

from webapp import events
from webapp.bounds import MAX_ID
from webapp.db import db
from webapp.errors import Conflict, InvalidInput
from webapp.people.models import (
    LoginAttempt,
    LoginSession,
    LoginToken,
    Role,
    Speaker,
    Unit,
    UnitKind,
    User,
    UserRole,
    unit_liaison,
)
from webapp.text import clean_line

MIN_PASSWORD_LENGTH = 8
DEFAULT_PHONE_REGION = "CN"


def normalise_email(raw: str) -> str:
    """Return the canonical form of an email address or raise InvalidInput."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(
            _("“%(value)s” is not a valid email address.", value=raw), field="email"
        ) from error
    return result.normalized.lower()


def normalise_phone(raw: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """Return a mobile number in E.164 form (+8613800138000) or raise InvalidInput."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException as error:
        raise InvalidInput(
            _("“%(value)s” is not a valid phone number.", value=raw), field="phone"
        ) from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(_("“%(value)s” is not a valid phone number.", value=raw), field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


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
        user.role_rows.append(UserRole(role=role))
    db.session.flush()


def revoke_role(user: User, role: Role) -> None:
    """Take a role away; the last admin cannot lose the admin role."""
    if role == Role.ADMIN and role in user.roles:
        admin_count = db.session.scalar(
            select(func.count()).select_from(UserRole).where(UserRole.role == Role.ADMIN)
        )
        if admin_count <= 1:
            raise Conflict(_("The last administrator cannot lose the administrator role."))
    user.role_rows = [row for row in user.role_rows if row.role != role]
    db.session.flush()


def create_unit(name: str, kind: UnitKind, parent: Unit | None = None) -> Unit:
    """Add a unit under parent; names are unique among siblings."""
    name = clean_line(name)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    parent_id = parent.id if parent else None
    if find_unit(name, parent) is not None:
        raise Conflict(_("A unit called “%(name)s” already exists here.", name=name))
    unit = Unit(name=name, kind=kind, parent_id=parent_id, parent=parent)
    db.session.add(unit)
    db.session.flush()
    return unit


def find_unit(name: str, parent: Unit | None = None) -> Unit | None:
    """Return the unit called name directly under parent (or at the top level)."""
    parent_clause = Unit.parent_id.is_(None) if parent is None else Unit.parent_id == parent.id
    return db.session.scalar(select(Unit).where(Unit.name == clean_line(name), parent_clause))


def unit_tree() -> list[tuple[Unit, int]]:
    """Return every unit with its depth, parents before children (liaisons loaded too)."""
    units = db.session.scalars(
        select(Unit).options(selectinload(Unit.liaisons)).order_by(Unit.id)
    ).all()
    children: dict[int | None, list[Unit]] = {}
    for unit in units:
        children.setdefault(unit.parent_id, []).append(unit)
    ordered: list[tuple[Unit, int]] = []

    def walk(parent_id: int | None, depth: int) -> None:
        for unit in children.get(parent_id, []):
            ordered.append((unit, depth))
            walk(unit.id, depth + 1)

    walk(None, 0)
    return ordered


def create_speaker(
    name: str,
    *,
    title: str | None = None,
    affiliation: str | None = None,
    bio: str | None = None,
    user: User | None = None,
) -> Speaker:
    """Add a speaker to the directory."""
    name = clean_line(name)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    if user is not None and db.session.scalar(select(Speaker.id).where(Speaker.user_id == user.id)):
        raise Conflict(
            _("This account is already linked to another speaker."), field="user_identifier"
        )
    speaker = Speaker(name=name, title=title, affiliation=affiliation, bio=bio, user=user)
    db.session.add(speaker)
    db.session.flush()
    return speaker


def update_speaker(
    speaker: Speaker,
    *,
    name: str,
    title: str | None,
    affiliation: str | None,
    bio: str | None,
    user: User | None,
) -> None:
    """Change a speaker's details or the account they are linked to."""
    name = clean_line(name)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    if user is not None:
        other = db.session.scalar(
            select(Speaker).where(Speaker.user_id == user.id, Speaker.id != speaker.id)
        )
        if other is not None:
            raise Conflict(
                _("This account is already linked to the speaker %(name)s.", name=other.name),
                field="user_identifier",
            )
    speaker.name, speaker.title, speaker.affiliation, speaker.bio = name, title, affiliation, bio
    speaker.user = user
    db.session.flush()
    events.speaker_changed.send(speaker_id=speaker.id)


def update_preferences(
    user: User,
    *,
    locale: str | None = None,
    email_reminders: bool | None = None,
    feed_alarm_minutes: int | None | object = ...,
) -> None:
    """Change what a person chose for themselves (only what is given); their own calendar
    feeds show their language and alarm, so others hear of it."""
    if locale is not None:
        user.locale = locale
    if email_reminders is not None:
        user.email_reminders = email_reminders
    if feed_alarm_minutes is not ...:
        user.feed_alarm_minutes = feed_alarm_minutes or None
    db.session.flush()
    events.preferences_changed.send(user_id=user.id)


def list_speakers() -> list[Speaker]:
    """The speaker directory, by name."""
    return list(
        db.session.scalars(
            select(Speaker).options(selectinload(Speaker.user)).order_by(Speaker.name)
        ).all()
    )


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


def unit_and_descendant_ids(unit: Unit) -> list[int]:
    """The unit's id and those of every unit below it (one query for the whole tree)."""
    pairs = db.session.execute(select(Unit.id, Unit.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for unit_id, parent_id in pairs:
        children.setdefault(parent_id, []).append(unit_id)
    found, stack = [], [unit.id]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def find_units_by_name(name: str) -> list[Unit]:
    """Every unit called name, wherever it is in the tree."""
    return list(db.session.scalars(select(Unit).where(Unit.name == clean_line(name))).all())


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


def liaison_unit_ids(user: User) -> list[int]:
    return list(
        db.session.scalars(select(unit_liaison.c.unit_id).where(unit_liaison.c.user_id == user.id))
    )


def is_liaison_for(user: User, unit: Unit) -> bool:
    """A liaison of a unit or of any unit above it."""
    own = set(liaison_unit_ids(user))
    current: Unit | None = unit
    while current is not None:
        if current.id in own:
            return True
        current = current.parent
    return False


# --- log-in sessions and attempts ---------------------------------------------------------

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


def check_password(user: User, password: str) -> bool:
    """Whether the password is the user's current one."""
    if user.password_hash is None:
        return False
    try:
        return password_hasher().verify(user.password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def add_liaison(unit: Unit, user: User) -> None:
    """Make the user a liaison (联络员) of the unit."""
    if user not in unit.liaisons:
        unit.liaisons.append(user)
    db.session.flush()


def remove_liaison(unit: Unit, user: User) -> None:
    """The user no longer acts as the unit's liaison."""
    if user in unit.liaisons:
        unit.liaisons.remove(user)
    db.session.flush()
