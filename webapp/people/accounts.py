"""Admins edit accounts: name, mobile number, email address, unit, title, roles; they
deactivate and reactivate them. Every change is recorded: who, when, what (old → new)."""

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select

from webapp import audit
from webapp.db import db
from webapp.errors import Conflict, InvalidInput
from webapp.people.identifiers import normalise_email, normalise_phone
from webapp.people.logins import end_all_login_sessions
from webapp.people.models import Role, Unit, User, UserChange, UserRole
from webapp.text import clean_line
from webapp.wakeups import Wake, wake


def record_change(user: User, action: str, changes: dict, *, by: User | None, now: datetime):
    db.session.add(
        UserChange(
            user_id=user.id,
            changed_by_id=by.id if by else None,
            action=action,
            changes=changes,
            created_at=now,
        )
    )
    audit.record(
        "user.changed",
        object_type="user",
        object_id=user.id,
        label=user.display_name,
        details={"action": action, "changes": changes},
        by=by,
        now=now,
    )
    db.session.flush()


def _admins_left(excluding: User) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(UserRole)
            .join(User, User.id == UserRole.user_id)
            .where(UserRole.role == Role.ADMIN, User.is_active.is_(True), User.id != excluding.id)
        )
        or 0
    )


def edit_user(
    user: User,
    *,
    by: User,
    now: datetime,
    display_name: str,
    phone: str | None,
    email: str | None,
    unit: Unit | None,
    job_title: str | None,
    roles: set[Role],
) -> dict:
    """Change an account; return what changed ({field: [old, new]}), also recorded."""
    name = clean_line(display_name or "")
    if not name:
        raise InvalidInput(_("Please enter a name."), field="display_name")
    phone = normalise_phone(phone) if (phone or "").strip() else None
    email = normalise_email(email) if (email or "").strip() else None
    if phone is None and email is None:
        raise InvalidInput(
            _("An account needs a mobile number or an email address."), field="phone"
        )
    for column, value, message in (
        (User.phone, phone, _("Another account has this mobile number.")),
        (User.email, email, _("Another account has this email address.")),
    ):
        if value is not None and db.session.scalar(
            select(User.id).where(column == value, User.id != user.id)
        ):
            raise Conflict(message)
    roles = set(roles) | {Role.PARTICIPANT}
    if Role.ADMIN in user.roles and Role.ADMIN not in roles and _admins_left(user) == 0:
        raise Conflict(_("The last administrator cannot lose the administrator role."))
    title = clean_line(job_title or "") or None
    new = {
        "display_name": name,
        "phone": phone,
        "email": email,
        "unit": unit.name if unit else None,
        "job_title": title,
        "roles": sorted(role.value for role in roles),
    }
    old = {
        "display_name": user.display_name,
        "phone": user.phone,
        "email": user.email,
        "unit": user.unit.name if user.unit else None,
        "job_title": user.job_title,
        "roles": sorted(role.value for role in user.roles),
    }
    changes = {key: [old[key], new[key]] for key in new if old[key] != new[key]}
    if not changes:
        return {}
    user.display_name, user.phone, user.email = name, phone, email
    user.unit_id = unit.id if unit else None
    user.job_title = title
    kept = [row for row in user.role_rows if row.role in roles]
    user.role_rows = kept + [UserRole(role=role) for role in roles - {row.role for row in kept}]
    db.session.flush()
    record_change(user, "edited", changes, by=by, now=now)
    return changes


def set_active(user: User, active: bool, *, by: User, now: datetime) -> None:
    """Deactivate (every log-in session ends; nothing is sent to them) or reactivate."""
    if user.is_active == active:
        return
    if not active:
        if user.id == by.id:
            raise Conflict(_("You cannot deactivate your own account."))
        if Role.ADMIN in user.roles and _admins_left(user) == 0:
            raise Conflict(_("The last administrator cannot be deactivated."))
        end_all_login_sessions(user, now=now)
        user.login_epoch += 1
    user.is_active = active
    wake(Wake.TOKENS)  # web processes forget the calendar links they remember
    db.session.flush()
    record_change(user, "reactivated" if active else "deactivated", {}, by=by, now=now)


def changes_of(user: User, limit: int = 50) -> list[UserChange]:
    return list(
        db.session.scalars(
            select(UserChange)
            .where(UserChange.user_id == user.id)
            .order_by(UserChange.id.desc())
            .limit(limit)
        )
    )
