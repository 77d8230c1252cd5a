"""Benchmark: reminders due at the same moment, delivered by worker processes (python -m
scheduler) on PostgreSQL to a local aiosmtpd sink, next to raw smtplib sending the same
rendered messages over the same number of connections, in the same run.

    .venv/bin/python bench/reminders.py [--count 10000] [--lateness-count 2000] [--database postgresql://postgres@127.0.0.1/postgres]

(a) throughput: `--count` reminders by 1 and by 3 workers, next to raw smtplib: messages per
second and the ratio worker msg/s ÷ raw msg/s; (b) lateness in the tester's scenario of issue
9: `--lateness-count` reminders, 3 workers, p50/p99 lateness after the due time, once with
nothing killed and once with one worker killed (SIGKILL) after a quarter was delivered, with
the duplicates and the reminders lost. Not a test: it asserts nothing."""

import argparse
import multiprocessing
import signal
import smtplib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import insert, select, text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    drop_database,
    free_port,
    fresh_database,
    start_workers,
)
from webapp import create_app  # noqa: E402
from webapp.db import db  # noqa: E402


class Sink:
    """Records when each delivery key arrived."""

    def __init__(self):
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.duplicates = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        for line in envelope.content.split(b"\r\n", 5)[:5]:
            if line.startswith(b"X-Yunketang-Delivery: "):
                key = line.split(b": ", 1)[1].decode()
                if key in self.arrivals:
                    self.duplicates += 1
                self.arrivals.setdefault(key, time.time())
        return "250 OK"


def prepare(app, count: int, due_at: datetime) -> list[bytes]:
    """Write `count` pending reminders due at `due_at`; return the rendered messages."""
    from webapp.people.models import Role, User
    from webapp.people.services import (
        create_user,
    )
    from webapp.reminders.messages import personalise, render_reminder
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

    with app.app_context():
        db.session.execute(
            text(
                "TRUNCATE delivery, reminder_plan, enrollment, worker_heartbeat, "
                'lecture_session, series, user_role, "user" CASCADE'
            )
        )
        now = datetime.now(UTC)
        organizer = create_user(
            display_name="组织者", email="organizer@example.org", roles=[Role.ORGANIZER]
        )
        series = create_series(title="基准测试研修班", organizer=organizer, now=now)
        session = create_session(
            series,
            starts_at=now + timedelta(minutes=10),
            ends_at=now + timedelta(minutes=70),
            title="第一天",
        )
        publish_series(series, now=now)
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
        users = db.session.scalars(select(User).where(User.email.like("cadre%"))).all()
        db.session.execute(
            insert(Enrollment),
            [
                {
                    "user_id": user.id,
                    "series_id": series.id,
                    "status": EnrollmentStatus.ENROLLED,
                    "source": EnrollmentSource.IMPORT,
                    "enrolled_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for user in users
            ],
        )
        db.session.commit()
        plan_reminders(now=now)
        db.session.execute(
            update(Delivery).where(Delivery.status == DeliveryStatus.PENDING).values(due_at=due_at)
        )
        db.session.commit()
        # Current statistics after the bulk load, as autovacuum's analyze has them within a
        # minute of it; without them the planner scans whole tables for a few rows.
        db.session.connection().exec_driver_sql("ANALYZE")
        db.session.commit()
        shared = render_reminder(session, "zh_CN", "Asia/Shanghai", now=now)
        return [
            personalise(shared, user.display_name, user.email, f"raw:{user.id}") for user in users
        ]


def raw_sender(port: int, messages: list[bytes]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as connection:
        for message in messages:
            connection.sendmail("noreply@localhost", ["someone@example.org"], message)


def run_raw(port: int, messages: list[bytes], connections: int, sink: Sink) -> float:
    before = sink.count
    started = time.perf_counter()
    shares = [messages[i::connections] for i in range(connections)]
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        pool.starmap(raw_sender, [(port, share) for share in shares])
    elapsed = time.perf_counter() - started
    assert sink.count - before == len(messages)
    return elapsed


def run_workers(
    app,
    database_url: str,
    port: int,
    workers: int,
    count: int,
    sink: Sink,
    instance: str,
    kill_after: float | None = None,
) -> tuple[float, list[float], float]:
    """Start the workers, let them settle, then make every row due 2 s later; with
    `kill_after`, SIGKILL the first worker once that share of the rows has arrived."""
    from webapp.reminders.models import Delivery, DeliveryStatus

    sink.arrivals.clear()
    sink.duplicates = 0
    processes = start_workers(
        app,
        workers,
        {
            "DATABASE_URL": database_url,
            "MAIL_URL": f"smtp://127.0.0.1:{port}",
            "INSTANCE_PATH": instance,
        },
    )
    try:
        with app.app_context():
            due_at = datetime.now(UTC) + timedelta(seconds=2)
            db.session.execute(
                update(Delivery)
                .where(Delivery.status == DeliveryStatus.PENDING)
                .values(due_at=due_at)
            )
            db.session.commit()
        if kill_after is not None:
            while len(sink.arrivals) < count * kill_after:
                time.sleep(0.005)
            processes[0].send_signal(signal.SIGKILL)
        give_up = time.monotonic() + 120
        while len(sink.arrivals) < count and time.monotonic() < give_up:
            time.sleep(0.05)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    due = due_at.timestamp()
    arrivals = sorted(sink.arrivals.values())
    if len(arrivals) < count:
        print(f"lost: {count - len(arrivals)} reminder(s) never arrived")
    lateness = [arrival - due for arrival in arrivals]
    return arrivals[-1] - due, lateness, arrivals[-1] - arrivals[0]


def percentile(values: list[float], fraction: float) -> float:
    return values[min(int(len(values) * fraction), len(values) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--lateness-count", type=int, default=2_000)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    database_url = fresh_database(args.database)
    instance = tempfile.mkdtemp(prefix="ykt-bench-")
    app = create_app(
        {"DATABASE_URL": database_url, "SECRET_KEY": "benchmark-secret-key-x", "TESTING": True}
    )
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade()
    throughput, lateness_rows = [], []
    try:
        for workers in (1, 3):
            messages = prepare(app, args.count, datetime.now(UTC) + timedelta(days=1))
            raw = run_raw(port, messages, workers, sink)
            total, lateness, sending = run_workers(
                app, database_url, port, workers, args.count, sink, instance
            )
            throughput.append(
                {
                    "workers": workers,
                    "deliver_all_s": total,
                    "sending_s": sending,
                    "per_second": args.count / sending,
                    "p50_s": statistics.median(lateness),
                    "p99_s": percentile(lateness, 0.99),
                    "raw_s": raw,
                    "raw_per_second": args.count / raw,
                }
            )
        for kill_after in (None, 0.25):
            prepare(app, args.lateness_count, datetime.now(UTC) + timedelta(days=1))
            total, lateness, sending = run_workers(
                app, database_url, port, 3, args.lateness_count, sink, instance, kill_after
            )
            lateness_rows.append(
                {
                    "kill": kill_after,
                    "p50_s": statistics.median(lateness),
                    "p99_s": percentile(lateness, 0.99),
                    "max_s": max(lateness),
                    "duplicates": sink.duplicates,
                    "lost": args.lateness_count - len(sink.arrivals),
                }
            )
    finally:
        controller.stop()
        drop_database(database_url)
    print(f"(a) {args.count} reminders due at the same moment, PostgreSQL, local aiosmtpd sink\n")
    print(
        "| workers | all delivered, after due time | sending (first → last) | msg/s "
        "| p50 lateness | p99 lateness | raw smtplib, same connections | raw msg/s "
        "| worker msg/s ÷ raw msg/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in throughput:
        print(
            f"| {row['workers']} | {row['deliver_all_s']:.2f} s | {row['sending_s']:.2f} s "
            f"| {row['per_second']:.0f} | {row['p50_s']:.2f} s | {row['p99_s']:.2f} s "
            f"| {row['raw_s']:.2f} s | {row['raw_per_second']:.0f} "
            f"| {row['per_second'] / row['raw_per_second']:.2f}× |"
        )
    print(f"\n(b) {args.lateness_count} reminders due at the same moment, 3 workers\n")
    print("| run | p50 lateness | p99 lateness | last one | duplicates | lost |")
    print("|---|---|---|---|---|---|")
    for row in lateness_rows:
        run = "nothing killed" if row["kill"] is None else "one worker SIGKILLed at 25 %"
        print(
            f"| {run} | {row['p50_s']:.2f} s | {row['p99_s']:.2f} s | {row['max_s']:.2f} s "
            f"| {row['duplicates']} | {row['lost']} |"
        )


if __name__ == "__main__":
    main()
