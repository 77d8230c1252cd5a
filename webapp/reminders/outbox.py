"""The outbox seen from outside the dispatcher: retries, counts, missed rows, and the
workers (heartbeats, lease renewal, giving rows back)."""

import os
import socket
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import selectinload

from webapp.db import db, utcnow
from webapp.errors import (
    Conflict,
)
from webapp.people.models import LoginCode, Unit, User
from webapp.people.units import (
    unit_and_descendant_ids,
)
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
    WorkerHeartbeat,
)
from webapp.reminders.reach import REASONS
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
)
from webapp.zones import zone

# --- admin -----------------------------------------------------------------------------------


def retry_delivery(delivery: Delivery, *, now: datetime) -> None:
    """Send a failed row again, from scratch."""
    if delivery.status != DeliveryStatus.FAILED:
        raise Conflict(_("Only failed messages can be retried."))
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.due_at = now
    delivery.claimed_by = None
    delivery.lease_until = None
    db.session.flush()


def retry_all_failed(*, now: datetime) -> int:
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.FAILED)
        .values(
            status=DeliveryStatus.PENDING, attempts=0, due_at=now, claimed_by=None, lease_until=None
        )
    )
    return result.rowcount


def delivery_counts() -> dict[str, int]:
    counts = dict(
        db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    )
    return {status.value: counts.get(status, 0) for status in DeliveryStatus}


def channel_counts() -> dict[str, dict[str, int]]:
    """Messages by channel (group robots and webhooks as one) and status."""
    counts: dict[str, dict[str, int]] = {}
    for channel, status, count in db.session.execute(
        select(Delivery.channel, Delivery.status, func.count()).group_by(
            Delivery.channel, Delivery.status
        )
    ):
        counts.setdefault(channel.value, {})[status.value] = count
    return counts


def failed_deliveries(limit: int = 100) -> list[Delivery]:
    return list(
        db.session.scalars(
            select(Delivery)
            .where(Delivery.status == DeliveryStatus.FAILED)
            .options(selectinload(Delivery.user))
            .order_by(Delivery.id.desc())
            .limit(limit)
        ).all()
    )


# --- workers ---------------------------------------------------------------------------------


def this_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(worker_id: str, *, now: datetime, started_at: datetime, sent: int = 0) -> None:
    """Record that this worker is alive (and how much it has sent)."""
    heartbeat = db.session.get(WorkerHeartbeat, worker_id)
    if heartbeat is None:
        hostname, _sep, pid = worker_id.rpartition(":")
        heartbeat = WorkerHeartbeat(
            worker_id=worker_id,
            hostname=hostname,
            pid=int(pid) if pid.isdigit() else 0,
            started_at=started_at,
            last_beat_at=now,
        )
        db.session.add(heartbeat)
    heartbeat.last_beat_at = now
    heartbeat.sent_total = (heartbeat.sent_total or 0) + sent
    db.session.flush()


def renew_claims(worker_id: str, *, now: datetime, lease: timedelta) -> int:
    """Extend the leases of the rows this worker holds: a live worker keeps its rows however
    long one send takes, a dead one loses them when its last lease runs out."""
    # Rows being written this very moment (an outcome on its way) are skipped, not waited
    # for: the writer and the heartbeat never wait on each other.
    held = (
        select(Delivery.id)
        .where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.CLAIMED)
        .order_by(Delivery.id)
        .with_for_update(skip_locked=True)
    )
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(held))
        .values(lease_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def release_claims(worker_id: str) -> int:
    """Give back the rows a stopping worker holds, as if never claimed: they go out at once
    from another worker (or this one when it starts again)."""
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.CLAIMED)
        .values(
            status=DeliveryStatus.PENDING,
            lease_until=None,
            attempts=case((Delivery.attempts > 0, Delivery.attempts - 1), else_=0),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def missed_deliveries() -> list[tuple[str, str | None, str | None, int]]:
    """What could not go out usefully, counted: (status, reason, the worker it was taken
    from, count), most first. Missed rows and rows in doubt, never mixed with skipped ones."""
    return [
        (status.value, reason, worker, count)
        for status, reason, worker, count in db.session.execute(
            select(Delivery.status, Delivery.last_error, Delivery.taken_from, func.count())
            .where(Delivery.status.in_([DeliveryStatus.MISSED, DeliveryStatus.IN_DOUBT]))
            .group_by(Delivery.status, Delivery.last_error, Delivery.taken_from)
            .order_by(func.count().desc())
        ).all()
    ]


def worker_heartbeats() -> list[WorkerHeartbeat]:
    return list(
        db.session.scalars(
            select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_beat_at.desc())
        ).all()
    )


def enrolled_in_scope(series: Series, unit_id: int | None) -> int:
    """How many are enrolled in the series: all of them, or those of a unit and its sub-units."""
    query = (
        select(func.count())
        .select_from(Enrollment)
        .where(Enrollment.series_id == series.id, Enrollment.status == EnrollmentStatus.ENROLLED)
    )
    if unit_id is not None:
        unit_ids = unit_and_descendant_ids(db.session.get(Unit, unit_id))
        query = query.join(User, User.id == Enrollment.user_id).where(User.unit_id.in_(unit_ids))
    return db.session.scalar(query)


def sms_costs(*, months: int = 13) -> list[tuple[int, str, str, int, int]]:
    """SMS sent per series and month (in the site's zone), newest first: (series id,
    title, "2026-12", messages, billed messages)."""
    zone_name = current_app.config["DEFAULT_TIMEZONE"]
    since = utcnow() - timedelta(days=31 * months)
    totals: dict[tuple[int, str], list[int]] = {}
    titles = {}
    for series_id, title, sent_at, cost in db.session.execute(
        select(Delivery.series_id, Series.title, Delivery.sent_at, Delivery.cost)
        .join(Series, Series.id == Delivery.series_id)
        .where(
            Delivery.channel == Channel.SMS,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= since,
        )
    ):
        month = sent_at.astimezone(zone(zone_name)).strftime("%Y-%m")
        count = totals.setdefault((series_id, month), [0, 0])
        count[0] += 1
        count[1] += cost
        titles[series_id] = title
    return sorted(
        (
            (series_id, titles[series_id], month, messages, billed)
            for (series_id, month), (messages, billed) in totals.items()
        ),
        key=lambda row: (row[2], row[1]),
        reverse=True,
    )


def _reached_nobody() -> tuple:
    """A delivery that went to nobody, for one of the reasons people are told about."""
    return (Delivery.status == DeliveryStatus.SKIPPED, Delivery.last_error.in_(list(REASONS)))


def unreached_counts(series_id: int | None = None) -> list[tuple[str, int]]:
    """Reminders and notices that went to nobody, by why (no channel, turned off ...)."""
    query = (
        select(Delivery.last_error, func.count())
        .where(*_reached_nobody())
        .group_by(Delivery.last_error)
        .order_by(func.count().desc())
    )
    if series_id is not None:
        query = query.where(Delivery.series_id == series_id)
    return [(reason, count) for reason, count in db.session.execute(query)]


def sms_sent_today(user_ids, *, since: datetime) -> dict[int, int]:
    """SMS sent to each person since the start of the day: reminders and notices from the
    outbox, and sign-in codes to their number (the per-number daily limit counts both)."""
    ids = list(user_ids) or [-1]
    counts = dict(
        db.session.execute(
            select(Delivery.user_id, func.count())
            .where(
                Delivery.user_id.in_(ids),
                Delivery.channel == Channel.SMS,
                Delivery.status == DeliveryStatus.SENT,
                Delivery.sent_at >= since,
            )
            .group_by(Delivery.user_id)
        ).all()
    )
    for user_id, count in db.session.execute(
        select(User.id, func.count())
        .join(LoginCode, LoginCode.phone == User.phone)
        .where(User.id.in_(ids), LoginCode.sent.is_(True), LoginCode.created_at >= since)
        .group_by(User.id)
    ):
        counts[user_id] = counts.get(user_id, 0) + count
    return counts


CHANGE_KINDS = (
    NotificationKind.RESCHEDULED,
    NotificationKind.CANCELLED,
    NotificationKind.AGENDA_CHANGED,
)


def waiting_and_unreached(series_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per series: notices of changes not sent yet (one per participant and change) and
    messages that reached nobody (two grouped queries, for the organizer's home)."""
    if not series_ids:
        return {}
    waiting = dict(
        db.session.execute(
            select(Notification.series_id, func.count())
            .where(
                Notification.series_id.in_(series_ids),
                Notification.status == NotificationStatus.PENDING,
                Notification.kind.in_(CHANGE_KINDS),
            )
            .group_by(Notification.series_id)
        ).all()
    )
    unreached = dict(
        db.session.execute(
            select(Delivery.series_id, func.count())
            .where(Delivery.series_id.in_(series_ids), *_reached_nobody())
            .group_by(Delivery.series_id)
        ).all()
    )
    return {sid: (waiting.get(sid, 0), unreached.get(sid, 0)) for sid in series_ids}
