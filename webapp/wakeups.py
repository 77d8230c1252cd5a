"""Waking the workers: a service that leaves work for them (a feed to render again, a
message due at once) says so with `wake(...)` in its own transaction. On PostgreSQL that is
a NOTIFY on one channel, delivered when the transaction commits (and not at all if it rolls
back; PostgreSQL sends one of several identical ones), which each worker's listener turns
into an immediate run of the job (scheduler/wakeups.py). On SQLite nothing is sent: the
workers' short polls find the work."""

from enum import StrEnum

from sqlalchemy import text

from webapp.db import db

CHANNEL = "yunketang_work"


class Wake(StrEnum):
    FEEDS = "feeds"  # feeds marked stale: publish them
    PLAN = "plan"  # a session moved close: plan its reminders now
    DISPATCH = "dispatch"  # outbox rows due now or soon: send them


def wake(what: Wake) -> None:
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": what.value},
        )
