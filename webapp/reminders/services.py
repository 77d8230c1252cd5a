"""Dropping pending reminders (a session moved or was cancelled, someone left), fenced
against a worker sending them; the shared constants of the outbox. Every function flushes;
the caller commits."""

from datetime import timedelta

from sqlalchemy import update

from webapp.db import db
from webapp.people.models import User
from webapp.reminders.fence import fence_series
from webapp.reminders.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
)
from webapp.series.models import (
    Series,
)
from webapp.sessions.models import LectureSession

MAX_RULE_MINUTES = 30 * 24 * 60
PLANNING_MARGIN = timedelta(minutes=5)
OPEN = (DeliveryStatus.PENDING, DeliveryStatus.CLAIMED)

# --- dropping pending rows ----------------------------------------------------------------


def drop_pending_reminders(session: LectureSession, *, reason: str) -> int:
    """Cancel the session's reminders not sent yet (it moved or was cancelled). The planner
    writes new ones for the new time. A claimed row is re-checked by its worker before it is
    sent; the fence makes this transaction commit only between two sends."""
    fence_series(session.series_id)
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.session_id == session.id,
            Delivery.kind.in_([DeliveryKind.REMINDER, DeliveryKind.DIGEST]),
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error=reason)
    )
    return result.rowcount


def drop_pending_for_participant(user: User, series: Series) -> int:
    """Cancel reminders for someone who left the series (fenced like a cancellation)."""
    fence_series(series.id)
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.user_id == user.id,
            Delivery.series_id == series.id,
            Delivery.kind == DeliveryKind.REMINDER,
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error="left the series")
    )
    return result.rowcount
