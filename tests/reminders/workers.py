"""Real worker processes (python -m scheduler) and real servers they send to, for tests that
start, stop and kill workers."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select

from tests.reminders.conftest import free_port
from webapp.db import db, utcnow
from webapp.people.models import Role, User
from webapp.reminders.models import Delivery, DeliveryStatus
from webapp.reminders.planning import (
    plan_reminders,
)
from webapp.series.models import Enrollment, EnrollmentSource, EnrollmentStatus
from webapp.series.services import (
    create_series,
)
from webapp.sessions.services import (
    create_session,
    publish_series,
)

ROOT = Path(__file__).resolve().parents[2]


class CountingSink:
    """An SMTP server that counts messages by delivery key and notes when each arrived; it
    can be made slow to widen the window in which a message is on its way."""

    def __init__(self, delay: float = 0.0):
        self.keys: Counter = Counter()
        self.arrivals: list[tuple[float, str]] = []
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        for line in envelope.content.split(b"\r\n", 5)[:5]:
            if line.startswith(b"X-Yunketang-Delivery: "):
                key = line.split(b": ", 1)[1].decode()
                self.keys[key] += 1
                self.arrivals.append((time.time(), key))
        return "250 OK"

    @property
    def total(self) -> int:
        return sum(self.keys.values())

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.keys.values())


def start_sink(delay: float = 0.0) -> tuple[CountingSink, Controller, str]:
    handler = CountingSink(delay)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return handler, controller, f"smtp://127.0.0.1:{port}"


class RobotReceiver:
    """An HTTP endpoint for many robots (one path each) that counts requests per path and
    answers like a robot platform (errcode 0), after `delay` seconds."""

    def __init__(self, delay: float = 0.0):
        self.paths: Counter = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                if delay:
                    time.sleep(delay)
                with receiver.lock:
                    receiver.paths[self.path] += 1
                payload = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a killed worker's connection breaks mid-answer: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Worker:
    """One `python -m scheduler` process; its log goes to a file the test can read."""

    def __init__(self, database_url: str, mail_url: str, folder: Path, **settings):
        folder.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "YUNKETANG_DATABASE_URL": database_url,
            "YUNKETANG_MAIL_URL": mail_url,
            "YUNKETANG_INSTANCE_PATH": str(folder),
            "YUNKETANG_SECRET_KEY": "worker-test-secret-key-0123456789",
            "YUNKETANG_LOG_LEVEL": "WARNING",
            "YUNKETANG_OUTGOING_ALLOWED_HOSTS": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
        env.update({f"YUNKETANG_{name}": str(value) for name, value in settings.items()})
        self.log_path = folder / f"worker-{time.monotonic_ns()}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scheduler"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.id = f"{socket.gethostname()}:{self.process.pid}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_all(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.stop()


def assert_no_tracebacks(workers: list[Worker]) -> None:
    for worker in workers:
        output = worker.output()
        assert "Traceback" not in output, f"worker {worker.id} logged:\n{output[-3000:]}"


def wait_for(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def published_series(make_user, title: str):
    """A published series with one session starting ten minutes from now."""
    now = utcnow()
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title=title, organizer=organizer, now=now)
    create_session(
        series, starts_at=now + timedelta(minutes=10), ends_at=now + timedelta(minutes=70)
    )
    publish_series(series, now=now - timedelta(days=1))
    db.session.flush()
    return series


def due_reminders(count: int, make_user, *, plan: bool = True) -> set[str]:
    """`count` participants whose quarter-hour reminder is due now (planned here, or left
    for the workers to plan); returns the planned keys."""
    now = utcnow()
    series = published_series(make_user, "大规模研修班")
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
    if not plan:
        return set()
    plan_reminders(now=now)
    db.session.commit()
    keys = set(
        db.session.scalars(select(Delivery.key).where(Delivery.status == DeliveryStatus.PENDING))
    )
    assert len(keys) == count
    return keys


def statuses() -> dict[str, int]:
    db.session.expire_all()
    rows = db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return {status.value: count for status, count in rows}
