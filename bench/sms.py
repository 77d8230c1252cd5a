"""Benchmark: SMS reminders through the dispatcher (worker processes, python -m scheduler,
PostgreSQL) to a local Aliyun-style SendSms server that checks every signature, next to raw
signed HTTP requests to the same server over the same number of connections, in one run.

    .venv/bin/python bench/sms.py [--count 10000] [--workers 1] [--limit-share 0.5] [--database postgresql://postgres@127.0.0.1/postgres]

(a) throughput: `--count` reminders due at once, no binding limit: messages per second and
the ratio dispatcher msg/s ÷ raw msg/s; (b) the per-second limit: SMS_PER_SECOND set to
`--limit-share` of the raw rate, `--count` reminders coming due evenly at 90 % of that
limit: the most SMS the server got in any one second, and p50/p99 lateness after the due
time. Not a test: it asserts nothing."""

import argparse
import json
import multiprocessing
import signal
import statistics
import sys
import tempfile
import time
import uuid
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from pathlib import Path

import urllib3
from sqlalchemy import bindparam, insert, select, text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, fresh_database, start_workers  # noqa: E402
from tests.platforms import AliyunSms  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.db import db  # noqa: E402
from webapp.reminders.personal import aliyun_body, national  # noqa: E402

KEY_ID, SECRET, TEMPLATE = "LTAI-bench", "bench-secret", "SMS_900001"


class Server(AliyunSms):
    """The checking server, recording when each message (by its OutId) arrived."""

    def __init__(self):
        super().__init__(key_id=KEY_ID, secret=SECRET)
        self.templates[TEMPLATE] = ("course", "time", "left")
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0

    def send_sms(self, query):
        response = super().send_sms(query)
        if response.status_code == 200 and b'"OK"' in response.get_data():
            key = query.get("OutId") or uuid.uuid4().hex
            with self.lock:
                if key in self.arrivals:
                    self.duplicates += 1
                self.arrivals.setdefault(key, time.time())
            self.received.clear()  # keep memory flat
        return response


def settings(server: Server, limit: float) -> dict:
    return {
        "SMS_PROVIDER": "aliyun",
        "CHANNEL_ORDER": "sms",
        "ALIYUN_SMS_ENDPOINT": server.url,
        "ALIYUN_ACCESS_KEY_ID": KEY_ID,
        "ALIYUN_ACCESS_KEY_SECRET": SECRET,
        "SMS_PER_SECOND": limit,
        "SMS_PER_DAY": 10_000_000,
        "SMS_PER_NUMBER_PER_DAY": 1000,
    }


def prepare(app, count: int) -> list[str]:
    """Write `count` SMS reminders (far in the future for now); return the numbers."""
    from webapp.people.models import Role, User
    from webapp.people.services import create_user
    from webapp.reminders.models import Delivery, DeliveryStatus
    from webapp.reminders.planning import plan_reminders
    from webapp.reminders.texts import save_template
    from webapp.series.models import Enrollment, EnrollmentSource, EnrollmentStatus
    from webapp.series.services import create_series
    from webapp.sessions.services import create_session, publish_series

    with app.app_context():
        db.session.execute(
            text(
                "TRUNCATE delivery, reminder_plan, enrollment, worker_heartbeat, sms_template, "
                'lecture_session, series, user_role, "user" CASCADE'
            )
        )
        save_template("reminder", "zh_CN", TEMPLATE, 35)
        now = datetime.now(UTC)
        organizer = create_user(
            display_name="组织者", email="organizer@example.org", roles=[Role.ORGANIZER]
        )
        series = create_series(title="基准测试研修班", organizer=organizer, now=now)
        create_session(
            series,
            starts_at=now + timedelta(minutes=10),
            ends_at=now + timedelta(minutes=70),
            title="第一天",
        )
        publish_series(series, now=now)
        phones = [f"+86139{n:08d}" for n in range(count)]
        db.session.execute(
            insert(User),
            [
                {
                    "phone": phone,
                    "display_name": f"学员{n}",
                    "is_active": True,
                    "email_reminders": True,
                    "login_epoch": 0,
                    "created_at": now,
                }
                for n, phone in enumerate(phones)
            ],
        )
        users = db.session.scalars(select(User.id).where(User.phone.like("+86139%"))).all()
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
                for user_id in users
            ],
        )
        db.session.commit()
        plan_reminders(now=now)
        db.session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.PENDING)
            .values(due_at=now + timedelta(days=1))
        )
        db.session.commit()
        db.session.connection().exec_driver_sql("ANALYZE")
        db.session.commit()
        return phones


def raw_sender(url: str, phones: list[str], rate: float | None = None) -> None:
    """What the dispatcher's last step does, with nothing around it: one signed SendSms
    request per message on one kept-alive connection (urllib3, as the product uses); at
    most `rate` a second when given."""
    http = urllib3.PoolManager(maxsize=1, retries=False)
    next_at = time.monotonic()
    params = {"course": "基准测试研修班 — 第一天", "time": "今天 16:00", "left": "15分钟后"}
    for phone in phones:
        if rate:
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        query = {
            "AccessKeyId": KEY_ID,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            "PhoneNumbers": national(phone),
            "SignName": "云课堂",
            "TemplateCode": TEMPLATE,
            "TemplateParam": json.dumps(params, ensure_ascii=False),
            "OutId": f"raw:{phone}:{uuid.uuid4().hex[:6]}",
        }
        response = http.request(
            "POST",
            url + "/",
            body=aliyun_body(query, SECRET),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
        answer = json.loads(response.data)
        assert answer["Code"] == "OK", answer


def run_raw(server: Server, phones: list[str], connections: int, rate=None) -> float:
    server.arrivals.clear()
    started = time.perf_counter()
    shares = [phones[i::connections] for i in range(connections)]
    share_rate = rate / connections if rate else None
    with multiprocessing.get_context("fork").Pool(connections) as pool:
        pool.starmap(raw_sender, [(server.url, share, share_rate) for share in shares])
    elapsed = time.perf_counter() - started
    assert len(server.arrivals) == len(phones), len(server.arrivals)
    return elapsed


def run_workers(app, database_url, server, workers, count, instance, limit, spread_rate=None):
    """Start the workers, let them settle, then make the rows due: all 2 s later, or one
    after another at `spread_rate` a second. Returns (lateness list, arrivals)."""
    from webapp.reminders.models import Delivery, DeliveryStatus

    server.arrivals.clear()
    server.duplicates = 0
    processes = start_workers(
        app,
        workers,
        {"DATABASE_URL": database_url, "INSTANCE_PATH": instance, **settings(server, limit)},
    )
    try:
        with app.app_context():
            start = datetime.now(UTC) + timedelta(seconds=2)
            rows = db.session.execute(
                select(Delivery.id, Delivery.key)
                .where(Delivery.status == DeliveryStatus.PENDING)
                .order_by(Delivery.id)
            ).all()
            due = {}
            values = []
            for index, (row_id, key) in enumerate(rows):
                at = start + timedelta(seconds=index / spread_rate if spread_rate else 0)
                due[key] = at.timestamp()
                values.append({"row_id": row_id, "due": at})
            table = Delivery.__table__
            db.session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("row_id"))
                .values(due_at=bindparam("due")),
                values,
            )
            db.session.commit()
        give_up = time.monotonic() + 300
        while len(server.arrivals) < count and time.monotonic() < give_up:
            time.sleep(0.05)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
    arrivals = dict(server.arrivals)
    if len(arrivals) < count:
        print(f"lost: {count - len(arrivals)} SMS never arrived")
    lateness = sorted(arrivals[key] - due[key] for key in arrivals if key in due)
    return lateness, sorted(arrivals.values())


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any window of one second."""
    return max(bisect_right(times, t + 1.0 - 1e-9) - i for i, t in enumerate(times))


def percentile(values: list[float], fraction: float) -> float:
    return values[min(int(len(values) * fraction), len(values) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--limit-share", type=float, default=0.5)
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    server = Server()
    database_url = fresh_database(args.database)
    instance = tempfile.mkdtemp(prefix="ykt-bench-")
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "benchmark-secret-key-x",
            "TESTING": True,
            **settings(server, 1_000_000),
        }
    )
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade()
    try:
        phones = prepare(app, args.count)
        raw = run_raw(server, phones, args.workers)
        raw_rate = args.count / raw
        lateness, arrivals = run_workers(
            app, database_url, server, args.workers, args.count, instance, 1_000_000
        )
        sending = arrivals[-1] - arrivals[0]
        rate = len(arrivals) / sending
        duplicates = server.duplicates
        limit = round(raw_rate * args.limit_share)
        prepare(app, args.count)
        limited, limited_arrivals = run_workers(
            app, database_url, server, args.workers, args.count, instance, limit, 0.9 * limit
        )
        raw_paced = run_raw(server, phones, args.workers, rate=limit)
        prepare(app, args.count)
        _lateness, paced_arrivals = run_workers(
            app, database_url, server, args.workers, args.count, instance, limit
        )
        paced_rate = len(paced_arrivals) / (paced_arrivals[-1] - paced_arrivals[0])
        paced_busiest = busiest_second(paced_arrivals)
    finally:
        server.close()
        drop_database(database_url)
    print(
        f"(a) {args.count} SMS reminders due at once, {args.workers} worker(s), PostgreSQL, "
        "local Aliyun-style server (signature checked)\n"
    )
    print(
        "| sending (first → last) | dispatcher SMS/s | raw signed requests, same connections "
        "| raw SMS/s | dispatcher ÷ raw | p99 lateness | duplicates |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {sending:.2f} s | {rate:.0f} | {raw:.2f} s | {raw_rate:.0f} | {rate / raw_rate:.2f}× "
        f"| {percentile(lateness, 0.99):.2f} s | {duplicates} |"
    )
    print(
        f"\n(b) SMS_PER_SECOND = {limit} ({args.limit_share:.0%} of the raw rate); "
        f"{args.count} reminders coming due evenly at {0.9 * limit:.0f}/s\n"
    )
    print("| most SMS in any one second | limit | p50 lateness | p99 lateness | delivered |")
    print("|---|---|---|---|---|")
    print(
        f"| {busiest_second(limited_arrivals)} | {limit} | {statistics.median(limited):.2f} s "
        f"| {percentile(limited, 0.99):.2f} s | {len(limited_arrivals)} / {args.count} |"
    )
    print(
        f"\n(c) SMS_PER_SECOND = {limit}; {args.count} reminders due at once, next to raw "
        "requests paced at the same limit over the same connections\n"
    )
    print("| dispatcher SMS/s | raw paced SMS/s | dispatcher ÷ raw | most in any one second |")
    print("|---|---|---|---|")
    raw_paced_rate = args.count / raw_paced
    print(
        f"| {paced_rate:.0f} | {raw_paced_rate:.0f} | {paced_rate / raw_paced_rate:.2f}× "
        f"| {paced_busiest} |"
    )


if __name__ == "__main__":
    main()
