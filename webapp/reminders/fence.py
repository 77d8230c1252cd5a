"""A fence between a change that must stop messages (a session moved or cancelled, someone
leaving a series) and the workers sending that series' messages.

On PostgreSQL a worker holds a shared advisory lock on the series (transaction-scoped) while
it checks rows against the series' current state and sends them; the change takes the same
lock exclusively inside its own transaction. So the change commits only when no message
checked against the old state is still on its way, and every message sent after it was
checked against the new state: nothing goes out after a cancel or a move is committed. The
lock queue is fair (a waiting change is not starved by new senders) and a worker holds the
lock for at most DISPATCH_FENCE_SECONDS at a time plus one send.

SQLite has one writer at a time: the worker holds the write lock while it re-checks and
sends one row (dispatch.py), which fences the same way, so nothing is needed here."""

from sqlalchemy import bindparam, func, select

from webapp.db import db

NAMESPACE = 0x594B54  # "YKT": the first key of the two-key advisory lock


def _is_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def fence_series(series_id: int) -> None:
    """Called inside a transaction that changes what the series' messages may say: waits
    until no worker is between checking and sending one, and keeps them out until commit."""
    if _is_postgresql():
        db.session.execute(select(func.pg_advisory_xact_lock(NAMESPACE, series_id)))


def enter_series(series_id: int) -> None:
    """Called by a worker before it reads the series' state to send its rows; held until the
    worker's transaction ends."""
    if _is_postgresql():
        db.session.connection().execute(_SHARED, {"series_id": series_id})


_SHARED = select(func.pg_advisory_xact_lock_shared(NAMESPACE, bindparam("series_id")))
