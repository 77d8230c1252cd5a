"""Writing outcomes as they happen: on SQLite under the write lock, row by row; on
PostgreSQL on a second connection, sent asynchronously right after a message and
collected before the next one's body (the point of no return)."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from select import select as wait_until_ready

import psycopg
from psycopg import pq
from sqlalchemy import and_, update

from webapp.db import db
from webapp.reminders.decisions import LOST, WRITE_TIMEOUT, Job, Outcome, final_values
from webapp.reminders.fence import enter_series
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryStatus,
)

log = logging.getLogger(__name__)


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
    lease_until = NULL, due_at = COALESCE(v.due_at, d.due_at), attempts = v.attempts,
    channel = v.channel, tried = v.tried, cost = v.cost
FROM unnest($1::integer[], $2::text[], $3::timestamptz[], $4::text[], $5::timestamptz[],
            $6::integer[], $7::text[], $8::text[], $9::integer[])
    AS v(id, status, sent_at, last_error, due_at, attempts, channel, tried, cost)
WHERE d.id = v.id AND d.claimed_by = $10 AND d.status = 'claimed'
"""
_OUTCOMES = b"ykt_record_outcomes_2"
# One outcome (the usual case: the message just sent), with plain parameters.
_OUTCOME_SQL = b"""
UPDATE delivery SET status = $2, sent_at = $3, last_error = $4, lease_until = NULL,
    due_at = COALESCE($5::timestamptz, due_at), attempts = $6, channel = $7, tried = $8,
    cost = $9
WHERE id = $1 AND claimed_by = $10 AND status = 'claimed'
"""
_OUTCOME = b"ykt_record_outcome_2"
_COLUMNS = (
    "id",
    "status",
    "sent_at",
    "last_error",
    "due_at",
    "attempts",
    "channel",
    "tried",
    "cost",
)


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
        self.pending.append(
            {
                **values,
                "status": values["status"].value,
                "channel": Channel(values["channel"]).value,
                "id": job.id,
            }
        )
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
            # Back to the pool as it came: the pool does not undo autocommit, and the next
            # user of this connection (publishing feeds, with savepoints) needs transactions.
            try:
                self.connection.autocommit = False
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
