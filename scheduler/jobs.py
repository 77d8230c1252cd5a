"""The table of sweep jobs. Each job is a thin wrapper over a webapp service, run inside an
application context; the database holds the schedule, so every job is safe to repeat.

The reminders, feeds, streaming and attendance issues add their sweeps here."""

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[], object]
    seconds: int


JOBS: tuple[Job, ...] = ()


def in_app_context(app: Flask, job: Job) -> Callable[[], object]:
    """Run job.func inside an app context and end the database session afterwards."""

    def run():
        with app.app_context():
            return job.func()

    run.__name__ = job.id
    return run
