"""Real worker processes (python -m scheduler) sharing the work through PostgreSQL."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select

from tests.reminders.conftest import free_port
from webapp.db import db, utcnow
from webapp.people.models import Role, User
from webapp.reminders.models import Delivery, DeliveryStatus
from webapp.reminders.services import plan_reminders
from webapp.series.models import Enrollment, EnrollmentSource, EnrollmentStatus
from webapp.series.services import create_series, publish_series
from webapp.sessions.services import create_session

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgresql_only


class CountingSink:
    """Counts messages by their delivery key; can be made slow to widen the in-flight window."""

    def __init__(self, delay: float = 0.0):
        self.keys: Counter = Counter()
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        for line in envelope.content.split(b"\r\n", 5)[:5]:
            if line.startswith(b"X-Yunketang-Delivery: "):
                self.keys[line.split(b": ", 1)[1].decode()] += 1
        return "250 OK"


@pytest.fixture
def sink():
    started = []

    def start(delay=0.0):
        handler = CountingSink(delay)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return handler, f"smtp://127.0.0.1:{port}"

    yield start
    for controller in started:
        controller.stop()


def due_reminders(count: int, make_user) -> set[str]:
    """`count` participants whose quarter-hour reminder is due now; returns the keys."""
    now = utcnow()
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="大规模研修班", organizer=organizer, now=now)
    create_session(
        series, starts_at=now + timedelta(minutes=10), ends_at=now + timedelta(minutes=70)
    )
    publish_series(series, now=now - timedelta(days=1))
    db.session.flush()
    db.session.execute(
        insert(User),
        [
            {
                "email": f"cadre{n}@example.org",
                "display_name": f"学员{n}",
                "is_active": True,
                "email_reminders": True,
                "login_epoch": 0,
                "created_at": now,
            }
            for n in range(count)
        ],
    )
    user_ids = db.session.scalars(select(User.id).where(User.email.like("cadre%"))).all()
    db.session.execute(
        insert(Enrollment),
        [
            {
                "user_id": user_id,
                "series_id": series.id,
                "status": EnrollmentStatus.ENROLLED,
                "source": EnrollmentSource.IMPORT,
                "enrolled_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for user_id in user_ids
        ],
    )
    db.session.commit()
    plan_reminders(now=now)
    db.session.commit()
    keys = set(
        db.session.scalars(select(Delivery.key).where(Delivery.status == DeliveryStatus.PENDING))
    )
    assert len(keys) == count
    return keys


def start_worker(database_url: str, mail_url: str, tmp_path: Path, **settings):
    env = {
        **os.environ,
        "YUNKETANG_DATABASE_URL": database_url,
        "YUNKETANG_MAIL_URL": mail_url,
        "YUNKETANG_INSTANCE_PATH": str(tmp_path),
        "YUNKETANG_SECRET_KEY": "worker-test-secret-key-0123456789",
        "YUNKETANG_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"YUNKETANG_{name}": str(value) for name, value in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def stop(workers, sig=signal.SIGTERM):
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(sig)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_three_workers_deliver_2000_reminders_exactly_once(
    app, make_user, sink, tmp_path, migrated_database
):
    keys = due_reminders(2000, make_user)
    handler, url = sink()
    workers = [
        start_worker(migrated_database, url, tmp_path, DISPATCH_BATCH_SIZE=50) for _ in range(3)
    ]
    try:
        assert wait_for(lambda: len(handler.keys) >= 2000, timeout=120), len(handler.keys)
        time.sleep(1)  # anything sent twice would arrive now
    finally:
        stop(workers)
    assert set(handler.keys) == keys
    assert max(handler.keys.values()) == 1, "some reminder was delivered twice"
    db.session.expire_all()
    assert (
        db.session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.SENT)
        )
        == 2000
    )
    senders = db.session.scalars(select(Delivery.claimed_by).distinct()).all()
    assert len(senders) >= 2, f"the work was not shared: {senders}"


def test_a_worker_killed_mid_batch_loses_nothing(app, make_user, sink, tmp_path, migrated_database):
    batch = 100
    keys = due_reminders(2000, make_user)
    handler, url = sink(delay=0.002)
    first = start_worker(
        migrated_database, url, tmp_path, DISPATCH_BATCH_SIZE=batch, DISPATCH_LEASE_SECONDS=3
    )
    try:
        assert wait_for(lambda: sum(handler.keys.values()) >= 250, timeout=60)
    finally:
        stop([first], signal.SIGKILL)
    delivered_before_kill = len(handler.keys)
    second = start_worker(
        migrated_database, url, tmp_path, DISPATCH_BATCH_SIZE=batch, DISPATCH_LEASE_SECONDS=3
    )
    try:
        assert wait_for(lambda: len(handler.keys) >= 2000, timeout=120), len(handler.keys)
        time.sleep(1)
    finally:
        stop([second])
    assert set(handler.keys) == keys  # nothing lost
    duplicates = sum(count - 1 for count in handler.keys.values())
    print(
        f"\nkilled after {delivered_before_kill} deliveries; {duplicates} duplicate(s), "
        f"at most one batch ({batch}) was in flight"
    )
    assert duplicates <= batch
