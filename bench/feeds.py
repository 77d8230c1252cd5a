"""Benchmarks for iCalendar feeds, on PostgreSQL.

    .venv/bin/python bench/feeds.py [--part a|b|c|all]

(a) the feed endpoint under gunicorn (2 workers) for a 500-event personal feed, 200 and 304
    responses, next to Flask's send_file of the same bytes on the same server in the same
    run (wrk on 127.0.0.1);
(b) the cost per event of building a personal feed at 100, 1,000 and 10,000 events: with the
    stored event fragments (what the product does), with the icalendar library rendering
    every event, and with a plain hand-written serializer of the same events;
(c) the time from rescheduling a session of a series with 5,000 enrolled participants to all
    5,000 personal feeds re-rendered by one worker, and how long the organizer's request
    takes.
Not a test: it prints tables and asserts nothing."""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, free_port, fresh_database  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.db import db  # noqa: E402


def make_app(database_url: str):
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "TESTING": True,
            "SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
            "PASSWORD_HASH_PROFILE": "CHEAPEST",
        }
    )
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade()
    return app


def build_series(events: int, participants: int, *, title="基准测试研修班"):
    """A published series with `events` sessions (two lectures each) and participants."""
    from webapp.people.models import Role, User
    from webapp.people.services import (
        create_user,
    )
    from webapp.people.speakers import (
        create_speaker,
    )
    from webapp.series.models import Enrollment, EnrollmentSource, EnrollmentStatus
    from webapp.series.services import (
        create_series,
    )
    from webapp.sessions.models import Lecture, LectureSession, lecture_speaker
    from webapp.sessions.services import (
        publish_series,
    )

    now = datetime.now(UTC)
    organizer = create_user(
        display_name="组织者",
        email=f"org-{uuid.uuid4().hex[:6]}@example.org",
        roles=[Role.ORGANIZER],
    )
    series = create_series(title=title, organizer=organizer, now=now, timezone="Europe/Berlin")
    speaker = create_speaker("刘金龙", title="教授", affiliation="中国人民大学农业与农村发展学院")
    start = datetime(2027, 1, 4, 15, tzinfo=UTC)
    db.session.execute(
        insert(LectureSession),
        [
            {
                "series_id": series.id,
                "title": f"第{n + 1}讲：基层治理与数字化",
                "starts_at": start + timedelta(days=n),
                "ends_at": start + timedelta(days=n, hours=2),
                "status": "scheduled",
                "sequence": 0,
                "location": "线上，腾讯会议",
                "published_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(events)
        ],
    )
    session_ids = db.session.scalars(
        select(LectureSession.id).where(LectureSession.series_id == series.id)
    ).all()
    db.session.execute(
        insert(Lecture),
        [
            {"session_id": sid, "title": title, "position": position}
            for sid in session_ids
            for position, title in enumerate(("社区治理与设计文明建设", "超大城市基层治理的探索"))
        ],
    )
    lecture_ids = db.session.scalars(
        select(Lecture.id).where(Lecture.session_id.in_(session_ids))
    ).all()
    db.session.execute(
        insert(lecture_speaker),
        [{"lecture_id": lid, "speaker_id": speaker.id} for lid in lecture_ids],
    )
    tag = uuid.uuid4().hex[:6]
    db.session.execute(
        insert(User),
        [
            {
                "email": f"p{n}-{tag}@example.org",
                "display_name": f"学员{n}",
                "is_active": True,
                "email_reminders": True,
                "login_epoch": 0,
                "created_at": now,
            }
            for n in range(participants)
        ],
    )
    users = db.session.scalars(select(User.id).where(User.email.like(f"p%-{tag}@%"))).all()
    db.session.execute(
        insert(Enrollment),
        [
            {
                "user_id": uid,
                "series_id": series.id,
                "status": EnrollmentStatus.ENROLLED,
                "source": EnrollmentSource.IMPORT,
                "enrolled_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for uid in users
        ],
    )
    publish_series(series, now=now)
    db.session.commit()
    return series, users


# --- (b) ------------------------------------------------------------------------------------


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def fold(line: str) -> bytes:
    data = line.encode()
    if len(data) <= 75:
        return data + b"\r\n"
    out, current = [], b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not out else 74):
            out.append(current)
            current = b""
        current += encoded
    out.append(current)
    return b"\r\n ".join(out) + b"\r\n"


def hand_written(sessions) -> bytes:
    """The baseline: a minimal serializer of the same events, written by hand."""
    parts = [b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//\r\nMETHOD:PUBLISH\r\n"]
    for s in sessions:
        tz = s.series.timezone
        local_start = s.starts_at.astimezone(__import__("zoneinfo").ZoneInfo(tz))
        local_end = s.ends_at.astimezone(__import__("zoneinfo").ZoneInfo(tz))
        lines = [
            "BEGIN:VEVENT",
            f"UID:session-{s.id}@localhost",
            f"DTSTAMP:{s.updated_at:%Y%m%dT%H%M%SZ}",
            f"SEQUENCE:{s.sequence}",
            f"DTSTART;TZID={tz}:{local_start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID={tz}:{local_end:%Y%m%dT%H%M%S}",
            f"SUMMARY:{escape(s.series.title + ' — ' + s.title)}",
            "DESCRIPTION:"
            + escape(
                "\n".join(
                    f"《{lec.title}》" + "、".join(sp.name for sp in lec.speakers)
                    for lec in s.lectures
                )
            ),
            f"LOCATION:{escape(s.location or '')}",
            "STATUS:CONFIRMED",
            "END:VEVENT",
        ]
        parts.extend(fold(line) for line in lines)
    parts.append(b"END:VCALENDAR\r\n")
    return b"".join(parts)


def part_b(database_url: str) -> None:
    from webapp.calendar.ical import (
        render_event,
    )
    from webapp.feeds.content import (
        feed_sessions,
        render_feed,
    )

    app = make_app(database_url)
    print("\n(b) building a personal feed, per event (µs), PostgreSQL\n")
    print(
        "| events | product: query + stored fragments | hand-written: query + serialize "
        "| icalendar for every event (no cache) | product / hand-written |"
    )
    print("|---|---|---|---|---|")
    for events in (100, 1000, 10000):
        with app.app_context():
            _series, users = build_series(events, 1, title=f"研修班{events}")
            key = f"user:{users[0]}"
            now = datetime.now(UTC)
            render_feed(key, now=now)  # the first render stores the fragments
            db.session.commit()

            def best(action):
                timings = []
                for _ in range(3):
                    db.session.expire_all()
                    started = time.perf_counter()
                    action()
                    timings.append(time.perf_counter() - started)
                return min(timings)

            product = best(lambda key=key, now=now: render_feed(key, now=now))
            hand = best(lambda key=key, now=now: hand_written(feed_sessions(key, now=now)))
            sessions = feed_sessions(key, now=now)
            started = time.perf_counter()
            for session in sessions:
                render_event(session, page_url="http://localhost/sessions/1")
            library = time.perf_counter() - started
            db.session.rollback()
        per = 1e6 / events
        print(
            f"| {events} | {product * per:.0f} | {hand * per:.0f} | {library * per:.0f} "
            f"| {product / hand:.2f}× |"
        )


# --- (c) ------------------------------------------------------------------------------------


def part_c(database_url: str, participants: int = 5000) -> None:
    from webapp.feeds.models import FeedDocument
    from webapp.feeds.services import (
        publish_stale_feeds,
        store_feed,
    )
    from webapp.sessions.services import (
        reschedule_session,
    )

    app = make_app(database_url)
    with app.app_context():
        series, users = build_series(3, participants, title="五千人研修班")
        now = datetime.now(UTC)
        for uid in users:
            store_feed(f"user:{uid}", now=now)
        db.session.commit()
        session = series.sessions[0]
        started = time.perf_counter()
        reschedule_session(
            session,
            starts_at=session.starts_at + timedelta(hours=1),
            ends_at=session.ends_at + timedelta(hours=1),
            by=None,
            now=now,
        )
        db.session.commit()
        request_time = time.perf_counter() - started
        stale = db.session.scalar(
            select(db.func.count())
            .select_from(FeedDocument)
            .where(FeedDocument.stale_since.is_not(None))
        )
        started = time.perf_counter()
        while publish_stale_feeds(now=datetime.now(UTC), limit=500):
            db.session.commit()
        worker_time = time.perf_counter() - started
        db.session.commit()
    print(f"\n(c) rescheduling a session of a series with {participants} participants\n")
    print(
        "| organizer's request (reschedule + mark feeds stale) | feeds marked stale "
        "| one worker re-renders them all |"
    )
    print("|---|---|---|")
    print(f"| {request_time * 1000:.0f} ms | {stale} | {worker_time:.2f} s |")


# --- (a) ------------------------------------------------------------------------------------


def wrk(url: str, *, headers: dict[str, str], seconds: int = 8) -> tuple[float, float]:
    command = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        command[1:1] = ["-H", f"{name}: {value}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    factor = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return rate, float(p99.group(1)) * factor


def part_a(database_url: str) -> None:
    part_a_run(database_url, lookup_memory=True)
    part_a_run(database_url, lookup_memory=False)


def part_a_run(database_url: str, *, lookup_memory: bool) -> None:
    from webapp.feeds.links import (
        link_token,
        token_for,
    )
    from webapp.feeds.models import FeedKind
    from webapp.feeds.serving import (
        current_document,
    )
    from webapp.people.models import User

    app = make_app(database_url)
    with app.app_context():
        _series, users = build_series(500, 1, title="五百讲研修班")
        user = db.session.get(User, users[0])
        token = token_for(user, FeedKind.PERSONAL, now=datetime.now(UTC))
        raw = link_token(token)
        document = current_document(f"user:{user.id}", now=datetime.now(UTC))
        db.session.commit()
        body, etag = document.body, document.etag
    feed_file = Path(tempfile.mkdtemp()) / "feed.ics"
    feed_file.write_bytes(body)
    port = free_port()
    env = {
        **os.environ,
        "YUNKETANG_DATABASE_URL": database_url,
        "YUNKETANG_SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
        "YUNKETANG_INSTANCE_PATH": tempfile.mkdtemp(),
        "BENCH_FEED_FILE": str(feed_file),
        "YUNKETANG_FEED_LOOKUP_CACHE_SECONDS": "1.0" if lookup_memory else "0",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "bench.feed_app:app",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        time.sleep(3)
        base = f"http://127.0.0.1:{port}"
        feed_url, static_url = f"{base}/feeds/{raw}.ics", f"{base}/_bench/static.ics"
        static_etag = subprocess.run(
            ["curl", "-sI", static_url], capture_output=True, text=True
        ).stdout
        static_etag = re.search(r'(?i)etag: (".*?")', static_etag).group(1)
        wrk(feed_url, headers={}, seconds=2)  # warm up
        rows = []
        for label, url, header in (
            ("200", feed_url, {}),
            ("200", static_url, {}),
            ("304", feed_url, {"If-None-Match": f'"{etag}"'}),
            ("304", static_url, {"If-None-Match": static_etag}),
        ):
            rows.append((label, url, *wrk(url, headers=header)))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(
        f"\n(a) feed endpoint vs send_file of the same {len(body) // 1024} KiB "
        "(500 events), gunicorn 2 workers, wrk 2 threads 16 connections; "
        + (
            "with the one-second lookup memory (the default)\n"
            if lookup_memory
            else "lookup memory off: one query per request\n"
        )
    )
    print("| response | feed endpoint req/s | send_file req/s | ratio | feed p99 | send_file p99 |")
    print("|---|---|---|---|---|---|")
    for status in ("200", "304"):
        feed = next(r for r in rows if r[0] == status and "/feeds/" in r[1])
        static = next(r for r in rows if r[0] == status and "/_bench/" in r[1])
        print(
            f"| {status} | {feed[2]:.0f} | {static[2]:.0f} | {feed[2] / static[2]:.2f}× "
            f"| {feed[3]:.1f} ms | {static[3]:.1f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["a", "b", "c", "all"])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    database_url = fresh_database(args.database)
    try:
        if args.part in ("b", "all"):
            part_b(database_url)
        if args.part in ("c", "all"):
            part_c(database_url)
        if args.part in ("a", "all"):
            part_a(database_url)
    finally:
        drop_database(database_url)
    _ = statistics


if __name__ == "__main__":
    main()
