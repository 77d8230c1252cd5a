"""The worker's ear: on PostgreSQL a thread LISTENs on the app's channel (webapp/wakeups.py)
and runs at once the job a notification names, so a change is published within
milliseconds of its commit instead of at the next poll. The jobs keep their intervals: a
lost connection (made again after a pause) costs speed, never work. On SQLite nothing
listens; the polls find the work."""

import logging
import threading
from datetime import UTC, datetime

from webapp.wakeups import Wake, listen

log = logging.getLogger("scheduler")

JOB_FOR = {Wake.FEEDS: "publish-feeds", Wake.PLAN: "plan-reminders", Wake.DISPATCH: "dispatch"}


def jobs_to_run(run_now):
    """A listener callback: run the job of each payload heard (once for a burst)."""

    def heard(payloads: set[str]) -> None:
        for payload in sorted(payloads):
            job_id = JOB_FOR.get(payload)
            if job_id is not None:
                run_now(job_id)

    return heard


def start_listening(database_url: str, scheduler, stop: threading.Event) -> threading.Thread:
    """A daemon thread that makes the scheduler run a job now when told to."""

    def run_now(job_id: str) -> None:
        try:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
        except Exception:  # the scheduler is stopping, or the job is not in its table
            log.debug("could not wake %s", job_id, exc_info=True)

    thread = threading.Thread(
        target=listen,
        args=(database_url, jobs_to_run(run_now), stop),
        kwargs={"on_ready": lambda: log.info("listening for work")},
        name="wakeups",
        daemon=True,
    )
    thread.start()
    return thread
