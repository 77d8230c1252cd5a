"""The audit log: who changed what, and when, across the product.

One row per change an admin may have to account for: session times and cancellations,
enrollments, imports, attendance decisions, token and key rotations, accounts and roles,
units, settings. A row keeps the names as they were (the person acting, the object), so it
still reads the same after either is renamed or deleted.

What domains already announce (a session moved, an enrollment) is written by the admin
domain's listeners (`webapp/admin/audit_listeners.py`); a change nobody else listens for is
recorded by the service that makes it, with `record()`. Both run inside the change's own
transaction, so a change and its audit row commit or roll back together.

Who acted is whoever is signed in to the request, or the API token's owner (the API sets
it with `acting_as`); a command line change says "command line", the worker "system".
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import click
import sqlalchemy as sa
from flask import g, has_app_context, has_request_context
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import Mapped, mapped_column

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.text import LineText


class Via(StrEnum):
    WEB = "web"
    API = "api"
    CLI = "cli"
    SYSTEM = "system"  # the worker, on its own


VIA_NAMES = {
    Via.WEB: _l("web"),
    Via.API: _l("API"),
    Via.CLI: _l("command line"),
    Via.SYSTEM: _l("system"),
}

# Every action the log knows, with what it is called on the audit page.
ACTIONS = {
    "session.created": _l("Session added"),
    "session.rescheduled": _l("Session moved"),
    "session.cancelled": _l("Session cancelled"),
    "session.deleted": _l("Session deleted"),
    "session.changed": _l("Session's title, place or link changed"),
    "series.changed": _l("Series changed"),
    "lecture.changed": _l("Agenda changed"),
    "series.published": _l("Series published"),
    "series.archived": _l("Series archived"),
    "enrollment.started": _l("Enrolled"),
    "enrollment.ended": _l("Enrollment ended"),
    "import.participants": _l("Participants imported"),
    "import.attendance": _l("Attendance imported"),
    "attendance.decided": _l("Attendance decided by hand"),
    "attendance.recomputed": _l("Attendance recomputed"),
    "feed_token.rotated": _l("Calendar link replaced"),
    "feed_token.revoked": _l("Calendar link revoked"),
    "stream_key.rotated": _l("Stream key replaced"),
    "api_token.created": _l("API token created"),
    "api_token.revoked": _l("API token revoked"),
    "user.changed": _l("Account changed"),
    "liaison.added": _l("Liaison added"),
    "liaison.removed": _l("Liaison removed"),
    "unit.created": _l("Unit created"),
    "unit.renamed": _l("Unit renamed"),
    "unit.moved": _l("Unit moved"),
    "unit.merged": _l("Units merged"),
    "unit.deactivated": _l("Unit deactivated"),
    "unit.reactivated": _l("Unit reactivated"),
    "setting.changed": _l("Setting changed"),
    "webhook.created": _l("Webhook added"),
    "webhook.changed": _l("Webhook changed"),
    "webhook.removed": _l("Webhook removed"),
    "webhook.secret_rotated": _l("Webhook secret replaced"),
}

OBJECT_TYPES = {
    "session": _l("Session"),
    "series": _l("Series"),
    "user": _l("Account"),
    "unit": _l("Unit"),
    "feed_token": _l("Calendar link"),
    "stream": _l("Stream"),
    "api_token": _l("API token"),
    "setting": _l("Setting"),
    "webhook": _l("Webhook"),
}


class AuditEntry(db.Model):
    """One change: when, by whom (and through what), what was done to which object."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        sa.Index("ix_audit_entry_object", "object_type", "object_id"),
        sa.Index("ix_audit_entry_actor_id_at", "actor_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    actor_name: Mapped[str | None] = mapped_column(LineText(100))
    via: Mapped[Via] = mapped_column(checked_enum(Via, "audit_via"))
    action: Mapped[str] = mapped_column(sa.String(40))
    object_type: Mapped[str] = mapped_column(sa.String(20))
    object_id: Mapped[int | None]
    object_label: Mapped[str] = mapped_column(LineText(300), default="")
    # The series the object belongs to, when it does: an organizer's question is often
    # "what happened in my series".
    series_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("series.id", ondelete="SET NULL"), index=True
    )
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    name: str | None
    via: Via


@contextmanager
def acting_as(user_id: int | None, name: str | None, via: Via) -> Iterator[None]:
    """Within the block, changes are recorded as made by this person, through `via`."""
    previous = g.get("audit_actor")
    g.audit_actor = Actor(user_id, name, via)
    try:
        yield
    finally:
        g.audit_actor = previous


def current_actor() -> Actor:
    """Who is making the change now."""
    if has_app_context() and g.get("audit_actor") is not None:
        return g.audit_actor
    if has_request_context():
        if current_user.is_authenticated:
            return Actor(current_user.id, current_user.display_name, Via.WEB)
        return Actor(None, None, Via.WEB)
    if click.get_current_context(silent=True) is not None:
        return Actor(None, None, Via.CLI)
    return Actor(None, None, Via.SYSTEM)


def record(
    action: str,
    *,
    object_type: str,
    object_id: int | None,
    label: str = "",
    series_id: int | None = None,
    details: dict | None = None,
    by=None,
    now: datetime | None = None,
) -> AuditEntry:
    """Write one audit row for a change made in the current transaction. `by` (a user)
    overrides who is acting, for services that are told who it is."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    actor = current_actor()
    if by is not None:
        actor = Actor(by.id, by.display_name, actor.via)
    entry = AuditEntry(
        at=now or utcnow(),
        actor_id=actor.user_id,
        actor_name=actor.name,
        via=actor.via,
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_label=(label or "")[:300],
        series_id=series_id,
        details=details or {},
    )
    db.session.add(entry)
    return entry


# --- reading the log -----------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the audit page is narrowed to; every part optional."""

    actor_id: int | None = None
    via: Via | None = None  # e.g. only changes made by the system or the command line
    object_type: str | None = None
    object_id: int | None = None
    series_id: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> sa.Select:
        query = sa.select(AuditEntry)
        conditions = (
            (self.actor_id, lambda: AuditEntry.actor_id == self.actor_id),
            (self.via, lambda: AuditEntry.via == self.via),
            (self.object_type, lambda: AuditEntry.object_type == self.object_type),
            (self.object_id, lambda: AuditEntry.object_id == self.object_id),
            (self.series_id, lambda: AuditEntry.series_id == self.series_id),
            (self.action, lambda: AuditEntry.action == self.action),
            (self.since, lambda: AuditEntry.at >= self.since),
            (self.until, lambda: AuditEntry.at < self.until),
        )
        for given, condition in conditions:
            if given is not None:
                query = query.where(condition())
        return query


def entries(filters: Filters, *, before_id: int | None = None, limit: int = 100) -> list:
    """The newest entries matching the filters, older than `before_id` (the cursor)."""
    query = filters.query()
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return list(db.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def actors() -> list[tuple[int, str]]:
    """Everyone who appears in the log as having changed something, by their latest name."""
    rows = db.session.execute(
        sa.select(AuditEntry.actor_id, sa.func.max(AuditEntry.actor_name))
        .where(AuditEntry.actor_id.is_not(None))
        .group_by(AuditEntry.actor_id)
    ).all()
    return sorted(
        ((actor_id, name or f"#{actor_id}") for actor_id, name in rows), key=lambda r: r[1]
    )


def details_text(details: dict) -> str:
    """The details as one line for an export: `name: old → new; name: value`."""
    parts = []
    for name, value in (details or {}).items():
        if isinstance(value, list) and len(value) == 2:
            old, new = ("—" if part is None else part for part in value)
            parts.append(f"{name}: {old} → {new}")
        elif isinstance(value, dict):
            parts.append(f"{name}: {details_text(value)}")
        else:
            parts.append(f"{name}: {value}")
    return "; ".join(parts)
