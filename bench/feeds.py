"""Benchmarks for iCalendar feeds, on PostgreSQL.

    .venv/bin/python bench/feeds.py [--part a|b|c|d|all] [--port N]

(YUNKETANG_FEED_LOOKUP_CACHE_SECONDS in the environment: (a) runs with that setting only.)

(a) the feed endpoint under gunicorn (2 workers) for a 500-event personal feed, 200 and 304
    responses, next to Flask's send_file of the same bytes on the same server in the same
    run (wrk on 127.0.0.1);
(b) the cost per event of building a personal feed at 100, 1,000 and 10,000 events: with the
    stored event fragments (what the product does), with the icalendar library rendering
    every event, and with a plain hand-written serializer of the same events;
(c) the time from rescheduling a session of a series with 5,000 enrolled participants to all
    5,000 personal feeds re-rendered by one worker, and how long the organizer's request
    takes;
(d) a cold render (nothing stored) of 100 and 1,000 events, next to the icalendar library
    serialising the same events from memory;
(e) freshness: a session or the whole series renamed, until the subscriber's feed shows it,
    with the real web server and worker running.
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


# --- (d) ------------------------------------------------------------------------------------


def plain_icalendar(values: list[dict]) -> bytes:
    """The baseline of (d): the same events (the same properties as the product's VEVENT)
    built with the icalendar library from values already in memory, and serialised (no
    database, no fragments)."""
    from icalendar import Calendar, Event

    calendar = Calendar()
    calendar.add("prodid", "-//bench//EN")
    calendar.add("version", "2.0")
    for value in values:
        event = Event()
        for name, item in value.items():
            event.add(name, item)
        calendar.add_component(event)
    return calendar.to_ical()


def event_values(sessions) -> list[dict]:
    from zoneinfo import ZoneInfo

    from icalendar import vCalAddress, vText

    from webapp.calendar.ical import book_title

    organizer = vCalAddress("mailto:noreply@localhost")
    organizer.params["cn"] = vText("云课堂")
    values = []
    for s in sessions:
        zone = ZoneInfo(s.series.timezone)
        lectures = [
            f"{book_title(lecture.title)} {'、'.join(sp.name for sp in lecture.speakers)}"
            for lecture in s.lectures
        ]
        values.append(
            {
                "uid": f"session-{s.id}@localhost",
                "dtstamp": s.updated_at,
                "created": s.created_at,
                "last-modified": s.updated_at,
                "dtstart": s.starts_at.astimezone(zone),
                "dtend": s.ends_at.astimezone(zone),
                "summary": f"{s.series.title} — {s.title}",
                "description": "\n".join([*lectures, f"http://localhost/sessions/{s.id}"]),
                "location": s.location or "",
                "url": f"http://localhost/sessions/{s.id}",
                "sequence": s.sequence,
                "status": "CONFIRMED",
                "organizer": organizer,
                "categories": [s.series.title],
            }
        )
    return values


def part_d(database_url: str) -> None:
    """A cold render inside a request (nothing stored: every event rendered, its fragment
    written, the feed stored) next to the icalendar library serialising the same events
    from memory, median of three runs each, in the same run."""
    from sqlalchemy import delete

    from webapp.feeds.content import feed_sessions
    from webapp.feeds.models import EventFragment, FeedDocument
    from webapp.feeds.services import store_feed

    app = make_app(database_url)
    print(f"\n(d) a cold render vs plain icalendar, median of 3 (load average {load()})\n")
    print("| events | cold render (query, render, store) | plain icalendar from memory | ratio |")
    print("|---|---|---|---|")
    for events in (100, 1000):
        with app.app_context():
            _series, users = build_series(events, 1, title=f"冷渲染{events}")
            key = f"user:{users[0]}"
            now = datetime.now(UTC)
            cold, plain = [], []
            for _ in range(3):
                db.session.execute(delete(EventFragment))
                db.session.execute(delete(FeedDocument))
                db.session.commit()
                db.session.expire_all()
                started = time.perf_counter()
                store_feed(key, now=now)
                db.session.commit()
                cold.append(time.perf_counter() - started)
                values = event_values(feed_sessions(key, now=now))
                started = time.perf_counter()
                plain_icalendar(values)
                plain.append(time.perf_counter() - started)
        c, p = statistics.median(cold), statistics.median(plain)
        print(f"| {events} | {c * 1000:.0f} ms | {p * 1000:.0f} ms | {c / p:.2f}× |")


# --- (e) ------------------------------------------------------------------------------------


def part_e(database_url: str, *, port: int = 0, changes: int = 40) -> None:
    """Freshness: the real web server (gunicorn, 2 workers) and the real worker
    (python -m scheduler) on PostgreSQL; a session renamed, or the whole series renamed,
    committed by the organizer's service, then the subscriber's feed fetched every 5 ms
    until it shows the new title. Times from the commit to the first fetch that shows it."""
    import urllib.request

    from webapp.feeds.links import link_token, token_for
    from webapp.feeds.models import FeedKind
    from webapp.people.models import User
    from webapp.series.models import Series
    from webapp.series.services import update_series
    from webapp.sessions.services import update_session

    app = make_app(database_url)
    setups = {}
    with app.app_context():
        for events in (100, 1000):
            series, users = build_series(events, 1, title=f"新鲜度{events}")
            user = db.session.get(User, users[0])
            raw = link_token(token_for(user, FeedKind.PERSONAL, now=datetime.now(UTC)))
            db.session.commit()
            setups[events] = (series.id, raw)
    port = port or free_port()
    env = {
        **os.environ,
        "YUNKETANG_DATABASE_URL": database_url,
        "YUNKETANG_SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
        "YUNKETANG_INSTANCE_PATH": tempfile.mkdtemp(),
        "YUNKETANG_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "webapp:create_app()"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-m", "scheduler"], cwd=ROOT, env=env)

    def fetch(raw: str) -> bytes:
        url = f"http://127.0.0.1:{port}/feeds/{raw}.ics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    def until_shown(raw: str, text: str) -> float:
        needle = text.encode("utf-8")
        started = time.perf_counter()
        while needle not in fetch(raw).replace(b"\r\n ", b""):
            if time.perf_counter() - started > 30:
                raise TimeoutError(text)
            time.sleep(0.005)
        return time.perf_counter() - started

    print(f"\n(e) change → a fetch shows it, PostgreSQL, web and worker running "
          f"(load average {load()})\n")  # fmt: skip
    print("| events | change | runs | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    try:
        time.sleep(4)  # both started, the worker listening
        with app.app_context():
            for events, (series_id, raw) in setups.items():
                fetch(raw)  # stored once
                series = db.session.get(Series, series_id)
                sessions = sorted(series.sessions, key=lambda s: s.starts_at)
                for what in ("one session renamed", "the series renamed"):
                    times = []
                    for n in range(changes if what.startswith("one") else changes // 4):
                        title = f"改名{n}-{uuid.uuid4().hex[:6]}"
                        if what.startswith("one"):
                            session = sessions[n % len(sessions)]
                            update_session(session, title=title, location=session.location,
                                           starts_at=session.starts_at, ends_at=session.ends_at,
                                           accept_warnings=True)  # fmt: skip
                        else:
                            update_series(series, title=title, description="",
                                          timezone=series.timezone, visibility=series.visibility,
                                          capacity=None, allows_self_enrollment=False,
                                          now=datetime.now(UTC))  # fmt: skip
                        db.session.commit()
                        times.append(until_shown(raw, title))
                        time.sleep(0.2)  # the next change comes later
                    times.sort()
                    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
                    print(
                        f"| {events} | {what} | {len(times)} "
                        f"| {statistics.median(times) * 1000:.0f} ms | {p99 * 1000:.0f} ms "
                        f"| {times[-1] * 1000:.0f} ms |"
                    )
    finally:
        for process in (web, worker):
            process.send_signal(signal.SIGTERM)
        for process in (web, worker):
            process.wait(timeout=60)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


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


def part_a(database_url: str, *, port: int = 0) -> None:
    """With YUNKETANG_FEED_LOOKUP_CACHE_SECONDS set, that setting alone; else with the
    one-second lookup memory (the default) and without it."""
    chosen = os.environ.get("YUNKETANG_FEED_LOOKUP_CACHE_SECONDS")
    for seconds in [chosen] if chosen is not None else ["1.0", "0"]:
        part_a_run(database_url, lookup_seconds=seconds, port=port)


def median_wrk(url: str, headers: dict[str, str], runs: int = 3) -> tuple[float, float, str]:
    """The median of `runs` wrk runs (rate and p99), with the load average before them."""
    load_before = load()
    results = [wrk(url, headers=headers) for _ in range(runs)]
    return (
        statistics.median(rate for rate, _p99 in results),
        statistics.median(p99 for _rate, p99 in results),
        load_before,
    )


def part_a_run(database_url: str, *, lookup_seconds: str, port: int = 0) -> None:
    from webapp.feeds.links import (
        link_token,
        token_for,
    )
    from webapp.feeds.models import FeedKind
    from webapp.feeds.serving import (
        current_document,
    )
    from webapp.people.models import User
    from webapp.series.models import Series, Visibility

    app = make_app(database_url)
    with app.app_context():
        series, users = build_series(500, 1, title="五百讲研修班")
        user = db.session.get(User, users[0])
        token = token_for(user, FeedKind.PERSONAL, now=datetime.now(UTC))
        raw = link_token(token)
        document = current_document(f"user:{user.id}", now=datetime.now(UTC))
        db.session.get(Series, series.id).visibility = Visibility.PUBLIC
        public = current_document(f"series:{series.id}", now=datetime.now(UTC))
        db.session.commit()
        body, etag, public_etag, series_id = document.body, document.etag, public.etag, series.id
    feed_file = Path(tempfile.mkdtemp()) / "feed.ics"
    feed_file.write_bytes(body)
    port = port or free_port()
    env = {
        **os.environ,
        "YUNKETANG_DATABASE_URL": database_url,
        "YUNKETANG_SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
        "YUNKETANG_INSTANCE_PATH": tempfile.mkdtemp(),
        "BENCH_FEED_FILE": str(feed_file),
        "YUNKETANG_FEED_LOOKUP_CACHE_SECONDS": lookup_seconds,
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
        public_url = f"{base}/series/{series_id}/calendar.ics"
        static_etag = subprocess.run(
            ["curl", "-sI", static_url], capture_output=True, text=True
        ).stdout
        static_etag = re.search(r'(?i)etag: (".*?")', static_etag).group(1)
        wrk(feed_url, headers={}, seconds=2)  # warm up
        rows = {
            (label, kind): median_wrk(url, header)
            for label, kind, url, header in (
                ("200", "feed", feed_url, {}),
                ("200", "static", static_url, {}),
                ("304", "feed", feed_url, {"If-None-Match": f'"{etag}"'}),
                ("304", "static", static_url, {"If-None-Match": static_etag}),
                ("304", "public", public_url, {"If-None-Match": f'"{public_etag}"'}),
            )
        }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    by_notify = os.environ.get("YUNKETANG_FEED_VALIDATORS_BY_NOTIFY", "true").lower() != "false"
    memory = (
        f"time-based lookup memory {lookup_seconds} s" if float(lookup_seconds)
        else "time-based lookup memory off"
    ) + (
        ", validators kept until a notification says a feed or link changed (the default)"
        if by_notify else ", no validators kept: one query per request"
    )  # fmt: skip
    print(
        f"\n(a) feed endpoint vs send_file of the same {len(body) // 1024} KiB (500 events), "
        f"gunicorn 2 workers on port {port}, wrk 2 threads 16 connections, median of 3 runs "
        f"of 8 s; {memory}\n"
    )
    print(
        "| response | feed endpoint req/s | send_file req/s | ratio | feed p99 | send_file p99 "
        "| load average before |"
    )
    print("|---|---|---|---|---|---|---|")
    for status in ("200", "304"):
        feed, static = rows[(status, "feed")], rows[(status, "static")]
        print(
            f"| {status} | {feed[0]:.0f} | {static[0]:.0f} | {feed[0] / static[0]:.2f}× "
            f"| {feed[1]:.1f} ms | {static[1]:.1f} ms | {feed[2]} / {static[2]} |"
        )
    public, private = rows[("304", "public")], rows[("304", "feed")]
    print(
        f"| 304 public series feed ÷ private feed | {public[0]:.0f} | {private[0]:.0f} "
        f"| {public[0] / private[0]:.2f}× | {public[1]:.1f} ms | {private[1]:.1f} ms "
        f"| {public[2]} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=["a", "b", "c", "d", "e", "all"])
    parser.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--port", type=int, default=0, help="for (a); a free port when 0")
    args = parser.parse_args()
    database_url = fresh_database(args.database)
    try:
        if args.part in ("e", "all"):
            part_e(database_url, port=args.port)
        if args.part in ("d", "all"):
            part_d(database_url)
        if args.part in ("b", "all"):
            part_b(database_url)
        if args.part in ("c", "all"):
            part_c(database_url)
        if args.part in ("a", "all"):
            part_a(database_url, port=args.port)
    finally:
        drop_database(database_url)


if __name__ == "__main__":
    main()
