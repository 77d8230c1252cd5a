"""The worker: an APScheduler BlockingScheduler in UTC that stops cleanly on SIGTERM."""

import logging
import signal
import threading
from datetime import UTC, datetime

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from scheduler.jobs import JOBS, Job, WorkerContext, give_back, in_app_context
from scheduler.wakeups import start_listening
from webapp.db import utcnow
from webapp.reminders.outbox import (
    this_worker_id,
)

log = logging.getLogger("scheduler")


class _SkippedRunFilter(logging.Filter):
    """A sweep still running when its next turn comes is skipped by design
    (max_instances=1); APScheduler logs that as a warning each time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_SkippedRunFilter())
# Sweeps run every second; a line per run would drown everything else (failures still show).
logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)


def build_scheduler(
    app: Flask, jobs: tuple[Job, ...] = JOBS, worker: WorkerContext | None = None
) -> BlockingScheduler:
    """Create the scheduler with every sweep job registered under its fixed id."""
    worker = worker or WorkerContext(worker_id=this_worker_id(), started_at=utcnow())
    scheduler = BlockingScheduler(timezone="UTC")
    for job in jobs:
        scheduler.add_job(
            in_app_context(app, job, worker),
            "interval",
            seconds=job.seconds,
            id=job.id,
            name=job.id,
            # Missed runs collapse into one; a sweep never overlaps itself; a run missed by
            # about one interval is still worth doing once.
            coalesce=True,
            max_instances=1,
            misfire_grace_time=max(int(job.seconds), 1),
            replace_existing=True,
            **({"next_run_time": datetime.now(UTC)} if job.run_at_start else {}),
        )
    return scheduler


def run(app: Flask) -> None:
    """Run until SIGTERM or SIGINT; the jobs in progress finish (sending stops after the
    message on its way) and the rows still claimed are given back before the process exits."""
    worker = WorkerContext(worker_id=this_worker_id(), started_at=utcnow())
    scheduler = build_scheduler(app, worker=worker)
    started = threading.Event()
    stoppers: list[threading.Thread] = []

    def on_started(event):
        started.set()
        start_listening(app.config["SQLALCHEMY_DATABASE_URI"], scheduler, worker.stopping)
        job_ids = ", ".join(job.id for job in scheduler.get_jobs()) or "none yet"
        log.info("scheduler started with %d job(s): %s", len(scheduler.get_jobs()), job_ids)

    def shutdown_once_started():
        # A signal can arrive before start() has begun; shutdown() would then refuse.
        started.wait()
        scheduler.shutdown(wait=True)

    def stop(signum, frame):
        if worker.stopping.is_set():
            return
        worker.stopping.set()
        log.info("received %s, finishing the current jobs", signal.Signals(signum).name)
        # The scheduler's lock may be held by the interrupted code; stop from a thread.
        stopper = threading.Thread(target=shutdown_once_started, daemon=True)
        stoppers.append(stopper)
        stopper.start()

    scheduler.add_listener(on_started, EVENT_SCHEDULER_STARTED)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
    # The main loop ends as soon as the scheduler is marked stopped, before the jobs running
    # in its pool have finished: wait for them, then give back what is still claimed.
    for stopper in stoppers:
        stopper.join()
    in_app_context(app, Job("give-back", give_back, 0), worker)()
    log.info("scheduler stopped")
