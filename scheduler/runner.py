"""The worker: an APScheduler BlockingScheduler in UTC that stops cleanly on SIGTERM."""

import logging
import signal
import threading

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from scheduler.jobs import JOBS, Job, in_app_context

log = logging.getLogger("scheduler")


def build_scheduler(app: Flask, jobs: tuple[Job, ...] = JOBS) -> BlockingScheduler:
    """Create the scheduler with every sweep job registered under its fixed id."""
    scheduler = BlockingScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    for job in jobs:
        scheduler.add_job(
            in_app_context(app, job),
            "interval",
            seconds=job.seconds,
            id=job.id,
            name=job.id,
            # A run missed by about one interval is still worth doing once.
            misfire_grace_time=max(job.seconds, 1),
            replace_existing=True,
        )
    return scheduler


def run(app: Flask) -> None:
    """Run until SIGTERM or SIGINT; the job in progress finishes before the process exits."""
    scheduler = build_scheduler(app)
    stopping = threading.Event()

    def stop(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        log.info("received %s, finishing the current jobs", signal.Signals(signum).name)
        # From a signal handler the scheduler's own lock may be held; stop from a thread.
        threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler started with %d job(s): %s", len(scheduler.get_jobs()),
             ", ".join(job.id for job in scheduler.get_jobs()) or "none yet")
    scheduler.start()
    log.info("scheduler stopped")
