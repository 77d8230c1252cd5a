"""What a claimed outbox row is, the state it is checked against at the last moment, and
the decision: send, or mark it missed, in doubt, skipped or failed (with why)."""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from flask import current_app
from sqlalchemy import and_, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from webapp.db import db
from webapp.people.models import User
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
)
from webapp.series.models import Enrollment, EnrollmentStatus
from webapp.sessions.models import LectureSession, SessionStatus

log = logging.getLogger(__name__)

SESSION_STARTED = "the session had started"
SESSION_OVER = "the session was over"


@dataclass
class Outcome:
    status: DeliveryStatus
    error: str | None = None
    retry_after: float | None = None
    deferred: bool = False  # held back (rate limit, server unreachable): the try does not count
    # Personal messages: the channel it went by (or is to go by next), the channels that
    # refused it for good, and what it cost.
    channel: Channel | None = None
    tried: str | None = None
    cost: int = 0


# The row is no longer this worker's (its lease was taken over): nothing is sent or written.
LOST = Outcome(DeliveryStatus.CLAIMED, "no longer held by this worker")

WRITE_TIMEOUT = 1.0  # seconds between checks while an outcome's answer is awaited


@dataclass
class DispatchStats:
    claimed: int = 0
    by_status: Counter = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return self.by_status[DeliveryStatus.SENT]

    def add(self, other: "DispatchStats") -> None:
        self.claimed += other.claimed
        self.by_status.update(other.by_status)


# --- what a row is, and the state it is checked against -------------------------------------


@dataclass(frozen=True)
class Job:
    """A claimed row (plain values: cheap to load in bulk)."""

    id: int
    key: str
    kind: DeliveryKind
    channel: Channel
    series_id: int
    session_id: int | None
    sequence: int
    payload: dict
    attempts: int
    webhook_id: int | None
    user_id: int | None
    taken_from: str | None
    taken_while_sending: bool
    tried: str | None = None


@dataclass(frozen=True)
class View:
    """A row's session and person as they are now."""

    session_status: SessionStatus | None
    session_sequence: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    session_updated_at: datetime | None
    enrolled: bool
    is_active: bool | None
    email: str | None
    email_reminders: bool | None
    display_name: str | None
    locale: str | None
    timezone: str | None
    phone: str | None = None
    muted_channels: str | None = None


_JOB_COLUMNS = (
    Delivery.id,
    Delivery.key,
    Delivery.kind,
    Delivery.channel,
    Delivery.series_id,
    Delivery.session_id,
    Delivery.sequence,
    Delivery.payload,
    Delivery.attempts,
    Delivery.webhook_id,
    Delivery.user_id,
    Delivery.taken_from,
    Delivery.taken_while_sending,
    Delivery.tried,
)
_VIEW_COLUMNS = (
    LectureSession.status,
    LectureSession.sequence,
    LectureSession.starts_at,
    LectureSession.ends_at,
    LectureSession.updated_at,
    Enrollment.status == EnrollmentStatus.ENROLLED,
    User.is_active,
    User.email,
    User.email_reminders,
    User.display_name,
    User.locale,
    User.timezone,
    User.phone,
    User.muted_channels,
)


@cache
def _load_statement():
    return (
        select(*_JOB_COLUMNS, *_VIEW_COLUMNS)
        .select_from(Delivery)
        .outerjoin(LectureSession, LectureSession.id == Delivery.session_id)
        .outerjoin(User, User.id == Delivery.user_id)
        .outerjoin(
            Enrollment,
            and_(
                Enrollment.user_id == Delivery.user_id,
                Enrollment.series_id == Delivery.series_id,
            ),
        )
        .where(Delivery.id.in_(bindparam("ids", expanding=True)))
        .order_by(Delivery.series_id, Delivery.id)
    )


def load_rows(ids: list[int]) -> tuple[list[Job], dict[int, View]]:
    """The rows, in sending order, and the current state behind each, in one query."""
    width = len(_JOB_COLUMNS)
    rows = db.session.connection().execute(_load_statement(), {"ids": ids}).all()
    jobs = [Job(*row[:width]) for row in rows]
    views = {}
    for row in rows:
        view = list(row[width:])
        view[5] = bool(view[5])  # enrolled: no enrollment row is not enrolled
        views[row[0]] = View(*view)
    return jobs, views


def current_views(jobs: list[Job]) -> dict[int, View]:
    return load_rows([job.id for job in jobs])[1]


def decide(job: Job, view: View, *, now: datetime) -> Outcome | None:
    """Whether the row must not go out any more, and why; None when it should go now.
    Reminders go before the start; a mention of who has not joined goes until the end."""
    if job.kind in (DeliveryKind.NOTICE, DeliveryKind.LOGIN, DeliveryKind.EVENT):
        return None  # a change notice, a log-in link or an event is worth sending whenever
    if view.session_status in (None, SessionStatus.CANCELLED):
        return Outcome(DeliveryStatus.CANCELLED, "the session was cancelled")
    if view.session_sequence != job.sequence:
        return Outcome(DeliveryStatus.CANCELLED, "the session changed after planning")
    if job.kind == DeliveryKind.MENTION:
        if view.ends_at <= now:
            return _too_late(job, SESSION_OVER)
    elif view.starts_at <= now:
        return _too_late(job, SESSION_STARTED)
    if job.kind == DeliveryKind.REMINDER and not view.enrolled:
        return Outcome(DeliveryStatus.CANCELLED, "no longer enrolled")
    return None


def _too_late(job: Job, reason: str) -> Outcome:
    """Missed, or in doubt when its dead worker was sending it (it may have arrived)."""
    if job.taken_while_sending:
        return Outcome(DeliveryStatus.IN_DOUBT, reason)
    return Outcome(DeliveryStatus.MISSED, reason)


def poisoned(job: Job, error: Exception) -> Outcome:
    """An error that this row's own content caused (it would fail again the same way): the
    row fails alone, with the error recorded for the admin; the batch goes on. Database
    errors are not the row's fault and end the batch."""
    if isinstance(error, SQLAlchemyError):
        raise error
    log.exception("delivery %s failed", job.id)
    return Outcome(DeliveryStatus.FAILED, f"{type(error).__name__}: {error}")


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min … at most an hour between tries."""
    base = current_app.config["DISPATCH_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))


def final_values(job: Job, outcome: Outcome, *, now: datetime) -> dict:
    """The columns an outcome writes onto its row."""
    status = outcome.status
    values = {
        "status": status,
        "sent_at": now if status == DeliveryStatus.SENT else None,
        # A message sent after another channel refused it keeps why (the organizer sees it).
        "last_error": (outcome.error or "").replace("\x00", "")[:2000] or None,
        "due_at": None,
        "attempts": job.attempts,
        "channel": outcome.channel or job.channel,
        "tried": outcome.tried if outcome.channel else job.tried,
        "cost": outcome.cost,
    }
    if outcome.deferred:
        values["attempts"] = max(job.attempts - 1, 0)
        wait = outcome.retry_after if outcome.retry_after is not None else 60
        values["due_at"] = now + timedelta(seconds=wait)
    elif status == DeliveryStatus.PENDING:
        if job.attempts >= current_app.config["DISPATCH_MAX_ATTEMPTS"]:
            values["status"] = DeliveryStatus.FAILED
        else:
            wait = (
                timedelta(seconds=outcome.retry_after)
                if outcome.retry_after
                else backoff(job.attempts)
            )
            values["due_at"] = now + wait
    return values
