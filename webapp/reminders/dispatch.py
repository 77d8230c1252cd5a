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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from itertools import groupby
from select import select as wait_until_ready
from threading import Event

import psycopg
from flask import current_app
from psycopg import pq
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased, selectinload

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
)
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Webhook,
)
from webapp.reminders.outbox import (
    release_claims,
)
from webapp.reminders.planning import (
    absent_members,
)
from webapp.series.models import Enrollment, EnrollmentStatus, Series
from webapp.sessions.models import Lecture, LectureSession, SessionStatus
from webapp.zones import (
    user_zone,
)

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
        with outcome_writer(worker_id) as writer, _Channels() as channels:
            sender = _Sender(writer, channels, now_fn=now_fn, stop=stop)
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
        "last_error": None
        if status == DeliveryStatus.SENT
        else (outcome.error or "").replace("\x00", "")[:2000],
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
    """Writes on the worker's own connection (SQLite). Before each send it takes the
    database's write lock, re-checks the row under it and keeps the lock until the outcome
    is committed: no change can commit in between."""

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
        # A write first: it takes the write lock (and says whether the row is still ours),
        # and what is read next is the newest state.
        held = db.session.execute(
            update(Delivery)
            .where(self._mine(job.id))
            .values(lease_until=Delivery.lease_until)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not held:
            db.session.commit()
            return LOST
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


# Every outcome so far in one statement, prepared once per connection.
_OUTCOMES_SQL = b"""
UPDATE delivery AS d SET status = v.status, sent_at = v.sent_at, last_error = v.last_error,
    lease_until = NULL, due_at = COALESCE(v.due_at, d.due_at), attempts = v.attempts
FROM unnest($1::integer[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[],
            $6::integer[]) AS v(id, status, sent_at, last_error, due_at, attempts)
WHERE d.id = v.id AND d.claimed_by = $7 AND d.status = 'claimed'
"""
_OUTCOMES = b"ykt_record_outcomes"
# One outcome (the usual case: the message just sent), with plain parameters.
_OUTCOME_SQL = b"""
UPDATE delivery SET status = $2, sent_at = $3, last_error = $4, lease_until = NULL,
    due_at = COALESCE($5::timestamptz, due_at), attempts = $6
WHERE id = $1 AND claimed_by = $7 AND status = 'claimed'
"""
_OUTCOME = b"ykt_record_outcome"
_COLUMNS = ("id", "status", "sent_at", "last_error", "due_at", "attempts")


def array_literal(values: list) -> bytes:
    """A PostgreSQL array in its text form: every element quoted and escaped, None NULL."""
    items = (
        "NULL"
        if value is None
        else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values
    )
    return ("{" + ",".join(items) + "}").encode()


class _Recorder:
    """Writes outcomes on a second connection without waiting for the answer (PostgreSQL):
    the statement goes out with libpq's asynchronous API right after a message is sent, its
    answer is collected just before the next message's body, the point of no return. So
    the write overlaps the next message's envelope (MAIL, RCPT, DATA) and costs no time, and
    no message leaves before the outcome of the one before it is committed. The series being
    sent is fenced (fence.py) on the worker's own connection."""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id
        self.raw = db.engine.raw_connection()
        self.connection = self.raw.driver_connection
        self.connection.autocommit = True
        for name, statement in ((_OUTCOMES, _OUTCOMES_SQL), (_OUTCOME, _OUTCOME_SQL)):
            prepared = self.connection.pgconn.prepare(name, statement)
            state = prepared.error_field(pq.DiagnosticField.SQLSTATE)
            if prepared.status != pq.ExecStatus.COMMAND_OK and state != b"42P05":  # "exists"
                raise psycopg.OperationalError(prepared.error_message.decode(errors="replace"))
        self.pending: list[dict] = []
        self.on_its_way: int | None = None  # rows in the statement awaiting its answer

    @contextmanager
    def series(self, series_id: int) -> Iterator[None]:
        enter_series(series_id)
        try:
            yield
            self.flush()
        finally:
            db.session.commit()  # ends the transaction: the fence opens

    def begin_send(self, job: Job, recheck: Callable[[], Outcome | None]) -> Outcome | None:
        if not self._collect():
            return LOST
        if self.pending:
            self._send()
        return None

    def ready(self) -> bool:
        return self._collect()

    def record(self, job: Job, outcome: Outcome, *, now: datetime) -> DeliveryStatus:
        values = final_values(job, outcome, now=now)
        self.pending.append({**values, "status": values["status"].value, "id": job.id})
        return values["status"]

    def flush(self) -> None:
        self._collect()
        if self.pending:
            self._send()
            self._collect()

    def _send(self) -> None:
        rows, self.pending = self.pending, []
        pgconn = self.connection.pgconn
        if len(rows) == 1:
            values = [rows[0][column] for column in _COLUMNS]
            params = [None if value is None else str(value).encode() for value in values]
            pgconn.send_query_prepared(_OUTCOME, [*params, self.worker_id.encode()])
        else:
            params = [array_literal([row[column] for row in rows]) for column in _COLUMNS]
            pgconn.send_query_prepared(_OUTCOMES, [*params, self.worker_id.encode()])
        while pgconn.flush():
            wait_until_ready([], [pgconn.socket], [], WRITE_TIMEOUT)
        self.on_its_way = len(rows)

    def _collect(self) -> bool:
        """Wait for the answer on its way; False if some row was no longer this worker's
        (its lease ran out while the worker was stalled and another took it over)."""
        if self.on_its_way is None:
            return True
        expected, self.on_its_way = self.on_its_way, None
        pgconn, written, error = self.connection.pgconn, 0, None
        while True:
            pgconn.consume_input()
            if pgconn.is_busy():
                wait_until_ready([pgconn.socket], [], [], WRITE_TIMEOUT)
                continue
            result = pgconn.get_result()
            if result is None:
                break
            if result.status == pq.ExecStatus.COMMAND_OK:
                written += int(result.command_tuples or 0)
            else:
                error = result.error_message.decode(errors="replace")
        if error is not None:
            raise psycopg.OperationalError(f"recording outcomes failed: {error}")
        if written != expected:
            log.warning("%d outcome(s) not written: rows taken over", expected - written)
            return False
        return True

    def close(self) -> None:
        try:
            self.flush()
        finally:
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
        self.lost = 0
        self.worker_id = writer.worker_id

    def send_batch(self, rows: list[tuple[int, int]]) -> DispatchStats:
        stats = DispatchStats(claimed=len(rows))
        self.mail_down = None
        for series_id, group in groupby(
            sorted(rows, key=lambda row: (row[1], row[0])), key=lambda row: row[1]
        ):
            remaining = [row_id for row_id, _series in group]
            while remaining:
                with self.writer.series(series_id):
                    remaining = self._send_slice(remaining, stats)
        if self.lost:
            # Rows this worker stopped sending because some were taken over: those still
            # its own go back to the queue (the heartbeat would keep them forever).
            release_claims(self.worker_id)
            db.session.commit()
            self.lost = 0
        return stats

    def _send_slice(self, ids: list[int], stats: DispatchStats) -> list[int]:
        """Send rows of one series under its fence, for at most the fence time; return the
        ids left for the next slice. What the rows are checked against is read here, after
        the fence was entered."""
        jobs, views = load_rows(ids)
        robots = {job.webhook_id for job in jobs if job.webhook_id}
        state = _State(views, now=self.now_fn(), webhook_ids=robots)
        ends = time.monotonic() + self.fence_seconds
        for index, job in enumerate(jobs):
            if time.monotonic() >= ends:
                return [later.id for later in jobs[index:]]
            if self.stop is not None and self.stop.is_set():
                outcome = Outcome(DeliveryStatus.PENDING, "worker stopping", 0.0, deferred=True)
            else:
                outcome = self._handle(job, state)
            if outcome is LOST:
                self.lost += 1
            else:
                stats.by_status[self.writer.record(job, outcome, now=self.now_fn())] += 1
        return []

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
        if job.channel == Channel.WEBHOOK:
            session = state.session(job.session_id)
            webhook = state.webhooks[job.webhook_id]
            if job.kind == DeliveryKind.MENTION:
                absent = state.absent[job.id]
                mobiles = [mobile_for_robot(user.phone) for user in absent if user.phone]
                return mention_text(session, absent), mobiles
            return digest_text(session, webhook, now=now), []
        view = state.views[job.id]
        language, tz_name = user_language(view), user_zone(view)
        if job.kind == DeliveryKind.REMINDER:
            # Rendered once per session version, language, zone and wording of the start.
            words = start_words(view.starts_at, language, tz_name, now=now)
            key = (job.session_id, view.session_sequence, view.session_updated_at)
            key += (language, tz_name, words)
            if key not in self.cache:
                session = state.session(job.session_id)
                self.cache[key] = render_reminder(session, language, tz_name, now=now)
            shared = self.cache[key]
        else:
            session = state.session(job.session_id) if job.session_id else None
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
        view = state.views[job.id]
        try:
            self.channels.robots.send(
                webhook,
                text,
                mobiles=mobiles,
                now=now,
                data={
                    "session_id": job.session_id,
                    "series_id": job.series_id,
                    "starts_at": view.starts_at.isoformat(),
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
    """What the rows of one slice are checked against, read inside the fence (their views),
    and what is loaded only when needed: the sessions to render (with lectures and
    speakers), robots and their sending windows."""

    def __init__(self, views: dict[int, View], *, now: datetime, webhook_ids: set[int]):
        self.views = views
        self.now = now
        self.webhook_ids = webhook_ids
        self._sessions: dict[int, LectureSession] = {}
        self._webhooks: dict[int, Webhook] | None = None
        self.recent: dict[int, list[datetime]] = {}
        self.absent: dict[int, list[User]] = {}

    def session(self, session_id: int) -> LectureSession:
        if session_id not in self._sessions:
            self._sessions[session_id] = db.session.scalars(
                select(LectureSession)
                .where(LectureSession.id == session_id)
                .options(
                    selectinload(LectureSession.series),
                    selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
                )
            ).one()
        return self._sessions[session_id]

    @property
    def webhooks(self) -> dict[int, Webhook]:
        if self._webhooks is None:
            self._webhooks = {
                webhook.id: webhook
                for webhook in db.session.scalars(
                    select(Webhook).where(Webhook.id.in_(self.webhook_ids))
                )
            }
            window_start = self.now - timedelta(minutes=1)
            self.recent = _sent_times(list(self._webhooks), window_start)
        return self._webhooks

    def robot_check(self, job: Job, *, now: datetime) -> Outcome | None:
        """A robot's own reasons to wait or not to send: removed, nobody absent, throttled
        by the platform, or at its limit of WEBHOOK_RATE_PER_MINUTE."""
        webhook = self.webhooks.get(job.webhook_id)
        if webhook is None or not webhook.is_active:
            return Outcome(DeliveryStatus.CANCELLED, "robot removed")
        if job.kind == DeliveryKind.MENTION:
            absent = absent_members(self.session(job.session_id), webhook.unit_id)
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
