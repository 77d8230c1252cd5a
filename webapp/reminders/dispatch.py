"""The dispatcher: claim due rows so that two workers can never both win one, check each row
against the current state of its session and person immediately before sending it, send it,
and record its outcome before the next message can arrive anywhere.

- Claims are small and leased; the worker's heartbeat renews its leases (scheduler/jobs.py),
  so only a dead worker's rows run out, and another worker takes them over within
  DISPATCH_LEASE_SECONDS, remembering whom it took them from.
- Each outcome is committed as soon as it is known, before the next message's point of no
  return (the SMTP body, the HTTP request). Rows are sent in a fixed order (series, id), so a
  killed worker leaves exactly one row that may have been on its way: the first of those it
  still holds. Taken over, that row is sent again if still useful (at most one duplicate) and
  recorded as in doubt if not.
- A change that must stop messages commits only between two sends (fence.py), so nothing
  checked against the old state leaves after a move or a cancellation is committed.
- A message that can no longer be useful is recorded as missed, with its reason and the
  worker it was taken from, never as skipped; skipped is only what is not needed by design.
- The text says the session's start time and how long until it, worked out when it is sent.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from threading import Event

from flask import current_app
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import aliased

from webapp.db import db, utcnow
from webapp.reminders.decisions import DispatchStats
from webapp.reminders.models import (
    Delivery,
    DeliveryStatus,
)
from webapp.reminders.outbox import (
    release_claims,
)
from webapp.reminders.outcomes import outcome_writer
from webapp.reminders.sending import Channels, Sender

log = logging.getLogger(__name__)


# Reasons recorded on rows that could not go out usefully (shown translated to admins).
def claim_due(worker_id: str, *, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Claim up to `limit` rows and commit the claim; return their ids."""
    return [row_id for row_id, _series in claim_rows(worker_id, now=now, limit=limit, lease=lease)]


def claim_rows(
    worker_id: str, *, now: datetime, limit: int, lease: timedelta
) -> list[tuple[int, int]]:
    """Claim up to `limit` rows, first those whose worker's lease ran out, then due ones in
    due order, and commit the claim; return (id, series id) pairs.

    On PostgreSQL the inner SELECTs take row locks with SKIP LOCKED, so concurrent workers
    take disjoint rows; SQLite runs one writer at a time, so each UPDATE is atomic. A row
    taken over remembers the worker it came from and whether that worker may have been
    sending it: workers send their rows in (series, id) order and record each outcome before
    the next message goes, so only the first row a dead worker still holds can have been on
    its way."""
    lapsed, due = _claim_statements()
    connection = db.session.connection()
    params = {"worker": worker_id, "now": now, "lease_until": now + lease, "limit": limit}
    rows = [tuple(row) for row in connection.execute(lapsed, params)]
    if len(rows) < limit:
        params["limit"] = limit - len(rows)
        rows += [tuple(row) for row in connection.execute(due, params)]
    db.session.commit()
    return rows


@cache
def _claim_statements():
    """The two claiming statements, built once (they run many times a second)."""
    other = aliased(Delivery)
    held_before = (
        select(other.id)
        .where(
            other.claimed_by == Delivery.claimed_by,
            other.status == DeliveryStatus.CLAIMED,
            or_(
                other.series_id < Delivery.series_id,
                and_(other.series_id == Delivery.series_id, other.id < Delivery.id),
            ),
        )
        .exists()
    )
    claim = {
        "status": DeliveryStatus.CLAIMED,
        "claimed_by": bindparam("worker"),
        "lease_until": bindparam("lease_until"),
        "attempts": Delivery.attempts + 1,
    }
    lapsed = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.CLAIMED, Delivery.lease_until < bindparam("now"))
        .order_by(Delivery.lease_until)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    # In due order only (not by id as well): the (status, due_at) index then yields the
    # first rows without sorting every due row.
    due = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.PENDING, Delivery.due_at <= bindparam("now"))
        .order_by(Delivery.due_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )

    def claiming(candidates, values):
        return (
            update(Delivery)
            .where(Delivery.id.in_(candidates))
            .values(**values)
            .returning(Delivery.id, Delivery.series_id)
        )

    return (
        claiming(
            lapsed,
            {**claim, "taken_from": Delivery.claimed_by, "taken_while_sending": ~held_before},
        ),
        claiming(due, {**claim, "taken_while_sending": False}),
    )


def dispatch_due(
    *,
    worker_id: str,
    now_fn: Callable[[], datetime] = utcnow,
    batch_size: int | None = None,
    max_batches: int = 100,
    wait: timedelta = timedelta(0),
    stop: Event | None = None,
) -> DispatchStats:
    """Send everything that is due, batch after batch, until nothing is left (or `stop` is
    set: the rows not yet sent are given back at once).

    With `wait`, a row coming due within that time is waited for, so a worker polling every
    second sends on the due second rather than up to a second late."""
    config = current_app.config
    batch_size = batch_size or config["DISPATCH_BATCH_SIZE"]
    lease = timedelta(seconds=config["DISPATCH_LEASE_SECONDS"])
    total = DispatchStats()
    deadline = now_fn() + wait
    try:
        with outcome_writer(worker_id) as writer, Channels() as channels:
            sender = Sender(writer, channels, now_fn=now_fn, stop=stop)
            for _ in range(max_batches):
                if stop is not None and stop.is_set():
                    break
                rows = claim_rows(worker_id, now=now_fn(), limit=batch_size, lease=lease)
                if not rows:
                    if not _sleep_until_next_due(now_fn, deadline):
                        break
                    continue
                total.add(sender.send_batch(rows))
    except Exception:
        # The heartbeat would keep renewing rows this run can no longer finish.
        db.session.rollback()
        release_claims(worker_id)
        db.session.commit()
        raise
    return total


def _sleep_until_next_due(now_fn: Callable[[], datetime], deadline: datetime) -> bool:
    """Sleep until the next pending row is due, if that is before the deadline."""
    next_due = db.session.scalar(
        select(func.min(Delivery.due_at)).where(Delivery.status == DeliveryStatus.PENDING)
    )
    db.session.commit()
    now = now_fn()
    if next_due is None or next_due > deadline or now >= deadline:
        return False
    time.sleep(max((next_due - now).total_seconds(), 0.01))
    return True
