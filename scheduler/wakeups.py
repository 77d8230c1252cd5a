"""The worker's ear: on PostgreSQL a thread LISTENs on the app's channel (webapp/wakeups.py)
and runs at once the job a notification names, so a change is published within
milliseconds of its commit instead of at the next poll. The jobs keep their intervals: a
lost connection (reconnected after a pause) costs speed, never work. On SQLite nothing
listens; the polls find the work."""

import logging
import threading
from datetime import UTC, datetime

import psycopg
from sqlalchemy import make_url

from webapp.wakeups import CHANNEL, Wake

log = logging.getLogger("scheduler")

JOB_FOR = {Wake.FEEDS: "publish-feeds", Wake.PLAN: "plan-reminders", Wake.DISPATCH: "dispatch"}
RECONNECT_AFTER = 2.0  # seconds


def postgresql_dsn(database_url: str) -> str | None:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def listen(database_url: str, run_now, stop: threading.Event) -> None:
    """Until `stop`: hear notifications and call `run_now(job_id)` for each (one call for a
    burst of the same kind). Returns at once for a database that cannot notify."""
    dsn = postgresql_dsn(database_url)
    if dsn is None:
        return
    while not stop.is_set():
        try:
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(f'LISTEN "{CHANNEL}"')
                log.info("listening for work on %s", CHANNEL)
                while not stop.is_set():
                    heard = {n.payload for n in connection.notifies(timeout=1.0, stop_after=100)}
                    for payload in sorted(heard):
                        job_id = JOB_FOR.get(payload)
                        if job_id is not None:
                            run_now(job_id)
        except psycopg.Error as error:
            log.warning("not listening for work (%s); again in %s s", error, RECONNECT_AFTER)
            stop.wait(RECONNECT_AFTER)


def start_listening(database_url: str, scheduler, stop: threading.Event) -> threading.Thread:
    """A daemon thread that makes the scheduler run a job now when told to."""

    def run_now(job_id: str) -> None:
        try:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
        except Exception:  # the scheduler is stopping, or the job is not in its table
            log.debug("could not wake %s", job_id, exc_info=True)

    thread = threading.Thread(
        target=listen, args=(database_url, run_now, stop), name="wakeups", daemon=True
    )
    thread.start()
    return thread
