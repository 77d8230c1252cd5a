"""The table of sweep jobs. Each job is a thin wrapper over a webapp service, run inside an
application context; the database holds the schedule, so every job is safe to repeat and
to run on several workers at once."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from threading import Event

from flask import Flask, current_app

from webapp.attendance.finalise import finalise_due
from webapp.db import db, utcnow
from webapp.feeds.services import (
    publish_stale_feeds,
)
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.notices import (
    compose_notices,
)
from webapp.reminders.outbox import (
    beat,
    release_claims,
    renew_claims,
)
from webapp.reminders.planning import (
    plan_mentions,
    plan_reminders,
)
from webapp.streaming.broadcasts import sweep
from webapp.streaming.recordings import make_playable
from webapp.streaming.viewers import sample_viewers


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[["WorkerContext"], object]
    seconds: float
    run_at_start: bool = False


@dataclass
class WorkerContext:
    worker_id: str
    started_at: object
    sent_since_beat: int = 0
    stopping: Event = field(default_factory=Event)


def heartbeat(worker: WorkerContext) -> None:
    """Tell admins this worker is alive, and keep the rows it is sending: their leases are
    renewed as long as the worker lives, however long one send takes."""
    now = utcnow()
    beat(worker.worker_id, now=now, started_at=worker.started_at, sent=worker.sent_since_beat)
    lease = timedelta(seconds=current_app.config["DISPATCH_LEASE_SECONDS"])
    renew_claims(worker.worker_id, now=now, lease=lease)
    db.session.commit()
    worker.sent_since_beat = 0


def give_back(worker: WorkerContext) -> None:
    """On the way out: rows still claimed go back to the queue at once, not after a lease."""
    release_claims(worker.worker_id)
    db.session.commit()


def plan(worker: WorkerContext) -> None:
    """Write the reminder rows coming due soon."""
    now = utcnow()
    plan_reminders(now=now)
    plan_mentions(now=now)
    db.session.commit()


def compose(worker: WorkerContext) -> None:
    """Turn settled changes into one notice per participant."""
    compose_notices(now=utcnow())
    db.session.commit()


def dispatch(worker: WorkerContext) -> None:
    """Claim and send every due row."""
    # Wait up to about one interval for rows coming due, so they go out on time.
    stats = dispatch_due(
        worker_id=worker.worker_id, wait=timedelta(seconds=0.9), stop=worker.stopping
    )
    worker.sent_since_beat += stats.sent


def publish_feeds(worker: WorkerContext) -> None:
    """Render the feeds something changed in, until none is left."""
    while publish_stale_feeds(now=utcnow()):
        db.session.commit()
    db.session.commit()


def follow_broadcasts(worker: WorkerContext) -> None:
    """End broadcasts whose publisher stayed away; move rooms elsewhere along by the clock."""
    sweep(now=utcnow())
    db.session.commit()


def count_viewers(worker: WorkerContext) -> None:
    """One viewers sample per live session (the live page's chart)."""
    sample_viewers(now=utcnow())
    db.session.commit()


def process_recordings(worker: WorkerContext) -> None:
    """Make new recordings playable (MP4), one file at a time."""
    make_playable(now=utcnow())


def finalise_attendance(worker: WorkerContext) -> None:
    """Freeze the attendance of sessions over for a while; the organizers are told."""
    finalise_due(now=utcnow())
    db.session.commit()


JOBS: tuple[Job, ...] = (
    Job("heartbeat", heartbeat, 2, run_at_start=True),
    Job("plan-reminders", plan, 5),
    Job("compose-notices", compose, 5),
    Job("dispatch", dispatch, 1),
    Job("publish-feeds", publish_feeds, 1),
    Job("follow-broadcasts", follow_broadcasts, 5),
    Job("count-viewers", count_viewers, 30),
    Job("process-recordings", process_recordings, 10),
    Job("finalise-attendance", finalise_attendance, 60),
)


def in_app_context(app: Flask, job: Job, worker: WorkerContext) -> Callable[[], object]:
    """Run the job inside an app context; its database session ends with the context."""

    def run():
        with app.app_context():
            return job.func(worker)

    run.__name__ = job.id
    return run
