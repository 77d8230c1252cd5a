"""Waking the workers and telling the web processes: a service that leaves work behind (a
feed to render again, a message due at once) or changes what a web process remembers (a
feed published anew, a link revoked) says so with `wake(...)` in its own transaction. On
PostgreSQL that is a NOTIFY on one channel, delivered when the transaction commits (never
for a rollback; PostgreSQL sends one of several identical ones). Each worker's listener
runs the job it names at once (scheduler/wakeups.py); each web process's listener forgets
the feed validators it keeps (webapp/feeds/invalidation.py). On SQLite nothing is sent: the
workers' short polls find the work, and web processes keep validators for a second only."""

import logging
import threading
from collections.abc import Callable
from enum import StrEnum

import psycopg
from sqlalchemy import make_url, text

from webapp.db import db

log = logging.getLogger(__name__)

CHANNEL = "yunketang_work"
RECONNECT_AFTER = 2.0  # seconds


class Wake(StrEnum):
    FEEDS = "feeds"  # feeds marked stale: publish them
    PLAN = "plan"  # a session moved close: plan its reminders now
    DISPATCH = "dispatch"  # outbox rows due now or soon: send them
    PUBLISHED = "published"  # feeds rendered anew: web processes forget their validators
    TOKENS = "tokens"  # a calendar link revoked or rotated, or its owner deactivated


def wake(what: Wake) -> None:
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": what.value},
        )


def postgresql_dsn(database_url: str) -> str | None:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def listen(
    database_url: str,
    on_heard: Callable[[set[str]], None],
    stop: threading.Event,
    *,
    on_ready: Callable[[], None] = lambda: None,
    on_lost: Callable[[], None] = lambda: None,
) -> None:
    """Until `stop`: call `on_heard` with the payload of each notification, as it comes;
    `on_ready` once LISTEN is in place, `on_lost` when the connection goes (it is made again
    after a pause). Returns at once for a database that cannot notify."""
    dsn = postgresql_dsn(database_url)
    if dsn is None:
        return
    failures = 0
    while not stop.is_set():
        try:
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f'LISTEN "{CHANNEL}"')
                failures = 0
                on_ready()
                while not stop.is_set():
                    # Each notification as it comes (the generator ends after a quiet second,
                    # so that `stop` is looked at).
                    for notification in connection.notifies(timeout=1.0):
                        on_heard({notification.payload})
        except psycopg.Error as error:
            failures += 1  # said once; tried again quietly until it works
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "not listening on %s (%s); trying again every %s s",
                CHANNEL,
                error,
                RECONNECT_AFTER,
            )
        on_lost()
        stop.wait(RECONNECT_AFTER)
