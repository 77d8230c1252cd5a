"""The dispatcher: claim due rows so that two workers can never both win one, check each row
against the current state of its session and person immediately before sending it, send it,
and record its outcome before the next message can arrive anywhere.

- Claims are small and leased; the worker's heartbeat renews its leases (scheduler/jobs.py),
  so only a dead worker's rows run out, and another worker takes them over within
  DISPATCH_LEASE_SECONDS, remembering whom it took them from.
- Each outcome is committed as soon as it is known, before the next message's point of no
  return (the SMTP body, the HTTP request), and the row about to be sent is marked first. A
  killed worker leaves one message undecided per connection: taken over, it is sent again if
  still useful (at most one duplicate) and recorded as in doubt if not.
- A change that must stop messages commits only between two sends (fence.py), so nothing
  checked against the old state leaves after a move or a cancellation is committed.
- A message that can no longer be useful is recorded as missed, with its reason and the
  worker it was taken from, never as skipped; skipped is only what is not needed by design.
- The text says the session's start time and how long until it, worked out when it is sent.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from threading import Event

from flask import current_app
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from webapp.db import db, utcnow
from webapp.people.models import User
from webapp.reminders.audience import wants_mail
from webapp.reminders.channels import DeliveryError, EmailChannel, WebhookChannel, Withdrawn
from webapp.reminders.fence import enter_series
from webapp.reminders.messages import (
    SharedMail,
    digest_text,
    mention_text,
    mobile_for_robot,
    personalise,
    render_notice,
    render_reminder,
    start_words,
    user_language,
    user_zone,
)
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Webhook,
)
from webapp.reminders.services import absent_members, release_claims
from webapp.series.models import Enrollment, EnrollmentStatus, Series
from webapp.sessions.models import Lecture, LectureSession, SessionStatus

log = logging.getLogger(__name__)

# Reasons recorded on rows that could not go out usefully (shown translated to admins).
SESSION_STARTED = "the session had started"
SESSION_OVER = "the session was over"


@dataclass
class Outcome:
    status: DeliveryStatus
    error: str | None = None
    retry_after: float | None = None
    deferred: bool = False  # held back (rate limit, server unreachable): the try does not count


# The row is no longer this worker's (its lease was taken over): nothing is sent or written.
LOST = Outcome(DeliveryStatus.CLAIMED, "no longer held by this worker")


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


def claim_due(worker_id: str, *, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Claim up to `limit` due rows (and rows whose lease ran out) and commit the claim.

    On PostgreSQL the inner SELECT takes row locks with SKIP LOCKED, so concurrent workers
    take disjoint batches; SQLite runs one writer at a time, so the UPDATE is atomic. A row
    taken over remembers the worker it came from and whether that worker was sending it."""
    taken_over = Delivery.status == DeliveryStatus.CLAIMED
    due = or_(
        and_(Delivery.status == DeliveryStatus.PENDING, Delivery.due_at <= now),
        and_(taken_over, Delivery.lease_until < now),
    )
    candidates = (
        select(Delivery.id)
        .where(due)
        .order_by(Delivery.due_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(candidates))
        .values(
            status=DeliveryStatus.CLAIMED,
            claimed_by=worker_id,
            lease_until=now + lease,
            attempts=Delivery.attempts + 1,
            taken_from=case((taken_over, Delivery.claimed_by), else_=Delivery.taken_from),
            taken_while_sending=and_(taken_over, Delivery.attempted_at.is_not(None)),
            attempted_at=None,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(db.session.scalars(statement).all())
    db.session.commit()
    return ids


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
        with outcome_writer(worker_id) as writer, _Channels() as channels:
            sender = _Sender(writer, channels, now_fn=now_fn, stop=stop)
            for _ in range(max_batches):
                if stop is not None and stop.is_set():
                    break
                ids = claim_due(worker_id, now=now_fn(), limit=batch_size, lease=lease)
                if not ids:
                    if not _sleep_until_next_due(now_fn, deadline):
                        break
                    continue
                total.add(sender.send_batch(ids))
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


def _load(ids: list[int]) -> list[Job]:
    rows = db.session.execute(
        select(
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
        )
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.series_id, Delivery.id)
    ).all()
    return [Job(*row) for row in rows]


@dataclass(frozen=True)
class View:
    """A row's session and person as they are now."""

    session_status: SessionStatus | None
    session_sequence: int | None
    starts_at: datetime | None
    ends_at: datetime | None
    enrolled: bool
    is_active: bool | None
    email: str | None
    email_reminders: bool | None
    display_name: str | None
    locale: str | None
    timezone: str | None


def current_views(jobs: list[Job]) -> dict[int, View]:
    """The current state behind each row, in one query."""
    rows = db.session.execute(
        select(
            Delivery.id,
            LectureSession.status,
            LectureSession.sequence,
            LectureSession.starts_at,
            LectureSession.ends_at,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            User.is_active,
            User.email,
            User.email_reminders,
            User.display_name,
            User.locale,
            User.timezone,
        )
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
        .where(Delivery.id.in_([job.id for job in jobs]))
    ).all()
    return {row[0]: View(*row[1:5], bool(row[5]), *row[6:]) for row in rows}


def decide(job: Job, view: View, *, now: datetime) -> Outcome | None:
    """Whether the row must not go out any more, and why; None when it should go now.
    Reminders go before the start; a mention of who has not joined goes until the end."""
    if job.channel == Channel.EMAIL and not wants_mail(
        job.kind,
        is_active=view.is_active,
        email=view.email,
        email_reminders=view.email_reminders,
        late_change=bool(job.payload.get("late_change")),
    ):
        return Outcome(DeliveryStatus.SKIPPED, "no email address, or mail turned off")
    if job.kind == DeliveryKind.NOTICE:
        return None  # a change notice is worth sending whenever it can go
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


def _poisoned(job: Job, error: Exception) -> Outcome:
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
        "last_error": None if status == DeliveryStatus.SENT else (outcome.error or "")[:2000],
        "due_at": None,
        "attempts": job.attempts,
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


# --- writing outcomes --------------------------------------------------------------------


class _InlineWriter:
    """Writes on the worker's own connection (SQLite). Before each send it marks the row
    (committed), then takes the database's write lock, re-checks the row under it and
    keeps the lock until the outcome is committed: no change can commit in between."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id

    def _mine(self, job_id: int):
        return and_(
            Delivery.id == job_id,
            Delivery.claimed_by == self.worker_id,
            Delivery.status == DeliveryStatus.CLAIMED,
        )

    @contextmanager
    def series(self, series_id: int) -> Iterator[None]:
        yield
        db.session.commit()

    def begin_send(self, job: Job, recheck: Callable[[], Outcome | None]) -> Outcome | None:
        marked = db.session.execute(
            update(Delivery)
            .where(self._mine(job.id))
            .values(attempted_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if not marked:
            return LOST
        # A write first: it takes the write lock, and what is read next is the newest state.
        db.session.execute(
            update(Delivery)
            .where(Delivery.id == job.id)
            .values(lease_until=Delivery.lease_until)
            .execution_options(synchronize_session=False)
        )
        return recheck()

    def ready(self) -> bool:
        return True

    def record(self, job: Job, outcome: Outcome, *, now: datetime) -> DeliveryStatus:
        values = final_values(job, outcome, now=now)
        if values["due_at"] is None:
            del values["due_at"]
        db.session.execute(
            update(Delivery)
            .where(self._mine(job.id))
            .values(lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        return values["status"]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


_OUTCOME_SQL = """
UPDATE delivery SET status = %(status)s, sent_at = %(sent_at)s, last_error = %(last_error)s,
    lease_until = NULL, due_at = COALESCE(%(due_at)s, due_at), attempts = %(attempts)s
WHERE id = %(id)s AND claimed_by = %(worker)s AND status = 'claimed'
"""
_MARK_SQL = """
UPDATE delivery SET attempted_at = %(now)s
WHERE id = %(id)s AND claimed_by = %(worker)s AND status = 'claimed'
"""


class _Recorder:
    """Writes outcomes on a second connection from a helper thread (PostgreSQL), so that
    writing one message's outcome, and marking the next row, overlaps the next message's
    envelope (MAIL, RCPT, DATA) and costs no time; the body, the point of no return, is
    sent only once that write is committed. The series being sent is fenced (fence.py) on
    the worker's own connection."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self.raw = db.engine.raw_connection()
        self.connection = self.raw.driver_connection
        self.connection.autocommit = True
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-recorder")
        self.pending: list[dict] = []
        self.future: Future | None = None

    @contextmanager
    def series(self, series_id: int) -> Iterator[None]:
        enter_series(series_id)
        try:
            yield
            self.flush()
        finally:
            db.session.commit()  # ends the transaction: the fence opens

    def begin_send(self, job: Job, recheck: Callable[[], Outcome | None]) -> Outcome | None:
        self._wait()
        rows, self.pending = self.pending, []
        self.future = self.executor.submit(self._write, rows, job.id, utcnow())
        return None

    def ready(self) -> bool:
        return self._wait()

    def record(self, job: Job, outcome: Outcome, *, now: datetime) -> DeliveryStatus:
        values = final_values(job, outcome, now=now)
        self.pending.append(
            {
                **values,
                "status": values["status"].value,
                "id": job.id,
                "worker": self.worker_id,
            }
        )
        return values["status"]

    def flush(self) -> None:
        self._wait()
        if self.pending:
            rows, self.pending = self.pending, []
            self.future = self.executor.submit(self._write, rows, None, None)
            self._wait()

    def _wait(self) -> bool:
        future, self.future = self.future, None
        return True if future is None else future.result()

    def _write(self, rows: list[dict], mark_id: int | None, now: datetime | None) -> bool:
        """One round trip: the outcomes so far, then the mark on the row about to go."""
        with self.connection.pipeline(), self.connection.cursor() as cursor:
            if rows:
                cursor.executemany(_OUTCOME_SQL, rows)
            if mark_id is None:
                return True
            cursor.execute(_MARK_SQL, {"id": mark_id, "worker": self.worker_id, "now": now})
        return cursor.rowcount == 1

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.executor.shutdown(wait=True)
            self.raw.close()


@contextmanager
def outcome_writer(worker_id: str) -> Iterator["_InlineWriter | _Recorder"]:
    """The outcome writer for this database."""
    if db.session.get_bind().dialect.name == "postgresql":
        writer = _Recorder(worker_id)
    else:
        writer = _InlineWriter(worker_id)
    try:
        yield writer
    finally:
        writer.close()


# --- sending ---------------------------------------------------------------------------------


class _Channels:
    """The open connections of one dispatch run (one SMTP connection, one HTTP session)."""

    def __enter__(self):
        config = current_app.config
        self.email = EmailChannel(
            config["MAIL_URL"],
            sender=config["MAIL_FROM"],
            timeout=config["MAIL_TIMEOUT"],
            ca_file=config["MAIL_CA_FILE"],
        )
        self.robots = WebhookChannel(timeout=config["WEBHOOK_TIMEOUT"])
        return self

    def __exit__(self, *exc_info):
        self.email.close()
        self.robots.close()


class _Sender:
    """Sends claimed rows series by series, each inside the series' fence, for at most
    DISPATCH_FENCE_SECONDS at a time (then the fence opens for any change waiting)."""

    def __init__(self, writer, channels: _Channels, *, now_fn, stop: Event | None):
        self.writer = writer
        self.channels = channels
        self.now_fn = now_fn
        self.stop = stop
        self.cache: dict[tuple, SharedMail] = {}
        self.fence_seconds = current_app.config["DISPATCH_FENCE_SECONDS"]
        self.mail_down: Outcome | None = None

    def send_batch(self, ids: list[int]) -> DispatchStats:
        jobs = _load(ids)
        stats = DispatchStats(claimed=len(jobs))
        self.mail_down = None
        for series_id, group in groupby(jobs, key=lambda job: job.series_id):
            remaining = list(group)
            while remaining:
                with self.writer.series(series_id):
                    self._send_slice(remaining, stats)
        return stats

    def _send_slice(self, remaining: list[Job], stats: DispatchStats) -> None:
        """Send from the front of `remaining` (in place) under one fence."""
        state = _State(remaining, now=self.now_fn())
        ends = time.monotonic() + self.fence_seconds
        while remaining and time.monotonic() < ends:
            job = remaining.pop(0)
            if self.stop is not None and self.stop.is_set():
                outcome = Outcome(DeliveryStatus.PENDING, "worker stopping", 0.0, deferred=True)
            else:
                outcome = self._handle(job, state)
            if outcome is not LOST:
                stats.by_status[self.writer.record(job, outcome, now=self.now_fn())] += 1

    def _handle(self, job: Job, state: "_State") -> Outcome:
        now = self.now_fn()
        try:
            outcome = decide(job, state.views[job.id], now=now)
            if outcome is None and job.channel == Channel.WEBHOOK:
                outcome = state.robot_check(job, now=now)
            if outcome is not None:
                return outcome
            if job.channel == Channel.EMAIL and self.mail_down is not None:
                return self.mail_down
            message = self._prepare(job, state, now=now)
        except Exception as error:
            return _poisoned(job, error)
        outcome = self.writer.begin_send(job, lambda: self._recheck(job, now=self.now_fn()))
        if outcome is not None:
            return outcome
        if job.channel == Channel.EMAIL:
            return self._send_email(job, state, message)
        return self._post(job, state, message, now=now)

    def _recheck(self, job: Job, *, now: datetime) -> Outcome | None:
        return decide(job, current_views([job])[job.id], now=now)

    def _prepare(self, job: Job, state: "_State", *, now: datetime):
        session = state.sessions.get(job.session_id)
        if job.channel == Channel.WEBHOOK:
            webhook = state.webhooks[job.webhook_id]
            if job.kind == DeliveryKind.MENTION:
                absent = state.absent[job.id]
                mobiles = [mobile_for_robot(user.phone) for user in absent if user.phone]
                return mention_text(session, absent), mobiles
            return digest_text(session, webhook, now=now), []
        view = state.views[job.id]
        language, tz_name = user_language(view), user_zone(view)
        if job.kind == DeliveryKind.REMINDER:
            words = start_words(session, language, tz_name, now=now)
            key = (session.id, session.sequence, language, tz_name, words)
            if key not in self.cache:
                self.cache[key] = render_reminder(session, language, tz_name, now=now)
            shared = self.cache[key]
        else:
            series = session.series if session else db.session.get(Series, job.series_id)
            shared = render_notice(
                job.payload.get("changes", []), session, series, language, tz_name, now=now
            )
        return personalise(shared, view.display_name, view.email, job.key)

    def _send_email(self, job: Job, state: "_State", message: bytes) -> Outcome:
        email = self.channels.email
        now = self.now_fn()
        try:
            email.send(
                state.views[job.id].email,
                message,
                name=f"{now:%Y%m%dT%H%M%S}-{job.id}",
                before_body=self.writer.ready,
            )
        except Withdrawn:
            return LOST
        except DeliveryError as error:
            outcome = Outcome(
                DeliveryStatus.FAILED if error.permanent else DeliveryStatus.PENDING,
                str(error),
                error.retry_after,
            )
            if error.unreachable:
                # The rest of this batch's mail waits for the server without using a try.
                self.mail_down = Outcome(
                    DeliveryStatus.PENDING,
                    str(error),
                    backoff(1).total_seconds(),
                    deferred=True,
                )
            return outcome
        return Outcome(DeliveryStatus.SENT)

    def _post(self, job: Job, state: "_State", message, *, now: datetime) -> Outcome:
        text, mobiles = message
        webhook = state.webhooks[job.webhook_id]
        session = state.sessions[job.session_id]
        try:
            self.channels.robots.send(
                webhook,
                text,
                mobiles=mobiles,
                now=now,
                data={
                    "session_id": session.id,
                    "series_id": session.series_id,
                    "starts_at": session.starts_at.isoformat(),
                },
                before_request=self.writer.ready,
            )
        except Withdrawn:
            return LOST
        except DeliveryError as error:
            if error.retry_after:
                webhook.throttled_until = now + timedelta(seconds=error.retry_after)
            return Outcome(
                DeliveryStatus.FAILED if error.permanent else DeliveryStatus.PENDING,
                str(error),
                error.retry_after,
                deferred=bool(error.retry_after),
            )
        except Exception as error:
            return _poisoned(job, error)
        state.robot_sent(webhook.id, now)
        return Outcome(DeliveryStatus.SENT)


class _State:
    """What the rows of one slice are checked against and rendered from, read inside the
    fence: their views, sessions (with lectures and speakers), robots and robot windows."""

    def __init__(self, jobs: list[Job], *, now: datetime):
        self.views = current_views(jobs)
        session_ids = {job.session_id for job in jobs if job.session_id}
        self.sessions = {
            session.id: session
            for session in db.session.scalars(
                select(LectureSession)
                .where(LectureSession.id.in_(session_ids))
                .options(
                    selectinload(LectureSession.series),
                    selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
                )
            )
        }
        robot_jobs = [job for job in jobs if job.channel == Channel.WEBHOOK]
        self.webhooks: dict[int, Webhook] = {}
        self.recent: dict[int, list[datetime]] = {}
        self.absent: dict[int, list[User]] = {}
        if robot_jobs:
            self.webhooks = {
                webhook.id: webhook
                for webhook in db.session.scalars(
                    select(Webhook).where(Webhook.id.in_({job.webhook_id for job in robot_jobs}))
                )
            }
            window_start = now - timedelta(minutes=1)
            self.recent = _sent_times(list(self.webhooks), window_start)

    def robot_check(self, job: Job, *, now: datetime) -> Outcome | None:
        """A robot's own reasons to wait or not to send: removed, nobody absent, throttled
        by the platform, or at its limit of WEBHOOK_RATE_PER_MINUTE."""
        webhook = self.webhooks.get(job.webhook_id)
        if webhook is None or not webhook.is_active:
            return Outcome(DeliveryStatus.CANCELLED, "robot removed")
        if job.kind == DeliveryKind.MENTION:
            absent = absent_members(self.sessions[job.session_id], webhook.unit_id)
            if not absent:
                return Outcome(DeliveryStatus.SKIPPED, "every member has joined")
            self.absent[job.id] = absent
        if webhook.throttled_until and webhook.throttled_until > now:
            wait = (webhook.throttled_until - now).total_seconds()
            return Outcome(DeliveryStatus.PENDING, "robot throttled", wait, deferred=True)
        limit = current_app.config["WEBHOOK_RATE_PER_MINUTE"]
        sent = sorted(self.recent.setdefault(webhook.id, []))
        if len(sent) >= limit:
            wait = (sent[-limit] + timedelta(minutes=1) - now).total_seconds()
            return Outcome(DeliveryStatus.PENDING, "rate limit", max(wait, 1.0), deferred=True)
        return None

    def robot_sent(self, webhook_id: int, now: datetime) -> None:
        self.recent.setdefault(webhook_id, []).append(now)


def _sent_times(webhook_ids: list[int], since: datetime) -> dict[int, list[datetime]]:
    times: dict[int, list[datetime]] = {}
    for webhook_id, sent_at in db.session.execute(
        select(Delivery.webhook_id, Delivery.sent_at).where(
            Delivery.webhook_id.in_(webhook_ids or [-1]),
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at > since,
        )
    ):
        times.setdefault(webhook_id, []).append(sent_at)
    return times
