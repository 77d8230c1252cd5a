"""Benchmark: the player's heartbeat ingest on PostgreSQL under gunicorn.

    .venv/bin/python bench/heartbeats.py [--viewers 5000] [--workers 4] [--seconds 10]

Next to a bare Flask endpoint on the same server, in the same run, that inserts one row per
request (bench/heartbeat_app.py):
(1) paced: every viewer sends a heartbeat every 30 s (5,000 viewers: 167 a second), from
    32 client threads; the latency of each request;
(2) as fast as it goes: wrk (2 threads, 16 connections: 4 per worker) with a different
    viewer's token on every request; rate and p99 of both endpoints, and the ratio;
(3) a gunicorn worker killed (SIGKILL) in the middle of (2): every acknowledged (2xx)
    heartbeat must be in the table;
(4) for the 100,000-viewer estimate: nginx's HLS auth subrequest (/streaming/hls-auth) for
    a logged-in participant, the app's side of one viewer's check;
(5) nginx-rtmp's on_update callback as nginx posts it (the key checked, the broadcast's
    last sign of life written): how long nginx waits for the app.
Not a test: it prints tables and asserts nothing."""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import urllib3
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, free_port, fresh_database  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.db import db  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdef"  # noqa: S105 (a benchmark's own)
VIEWER_PASSWORD = "correct horse battery"  # noqa: S105


def make_app(database_url: str):
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "TESTING": True,
            "SECRET_KEY": SECRET,
            "PASSWORD_HASH_PROFILE": "CHEAPEST",
        }
    )
    with app.app_context():
        import flask_migrate

        flask_migrate.upgrade()
    return app


def build(viewers: int) -> tuple[int, list[int], list[str]]:
    """A live self-hosted session with `viewers` enrolled participants and their tokens."""
    from webapp.people.models import User
    from webapp.series.models import Enrollment, EnrollmentStatus, Series, SeriesStatus
    from webapp.sessions.models import LectureSession, SessionStatus, StreamMode
    from webapp.streaming.keys import viewer_token

    now = datetime.now(UTC)
    series = Series(title="心跳基准研修班", timezone="Asia/Shanghai", status=SeriesStatus.PUBLISHED)
    db.session.add(series)
    db.session.flush()
    session = LectureSession(
        series_id=series.id,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=2),
        stream_mode=StreamMode.HOSTED,
        status=SessionStatus.LIVE,
        published_at=now,
    )
    db.session.add(session)
    db.session.execute(
        insert(User),
        [dict(display_name=f"学员{n}", phone=f"139{n:08d}") for n in range(viewers)],
    )
    user_ids = list(db.session.scalars(select(User.id).order_by(User.id)))
    db.session.execute(
        insert(Enrollment),
        [
            dict(user_id=uid, series_id=series.id, status=EnrollmentStatus.ENROLLED)
            for uid in user_ids
        ],
    )
    db.session.commit()
    return session.id, user_ids, [viewer_token(uid, session.id) for uid in user_ids]


def login_cookie(app, session_id: int) -> tuple[str, str]:
    """A participant with a password, logged in through the login form: (cookie, stream)."""
    from webapp.people.services import create_user
    from webapp.series.enrollment import enroll
    from webapp.series.models import EnrollmentSource
    from webapp.sessions.models import LectureSession
    from webapp.streaming.broadcasts import stream_of

    with app.app_context():
        session = db.session.get(LectureSession, session_id)
        user = create_user(display_name="看直播的学员", email="viewer@example.org",
                           password=VIEWER_PASSWORD)  # fmt: skip
        enroll(user, session.series, source=EnrollmentSource.INDIVIDUAL,
               now=datetime.now(UTC), notify=False)  # fmt: skip
        stream = stream_of(session).name
        db.session.commit()
    client = app.test_client()
    page = client.get("/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    client.post("/login", data={"csrf_token": token, "identifier": "viewer@example.org",
                                "password": VIEWER_PASSWORD})  # fmt: skip
    name = app.config["SESSION_COOKIE_NAME"]
    return f"{name}={client.get_cookie(name).value}", stream


def start_server(database_url: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "YUNKETANG_DATABASE_URL": database_url,
        "YUNKETANG_SECRET_KEY": SECRET,
        "YUNKETANG_INSTANCE_PATH": tempfile.mkdtemp(),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "bench.heartbeat_app:app"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager()
    for _ in range(100):
        try:
            http.request("GET", f"{base}/healthz", retries=False)
            break
        except urllib3.exceptions.HTTPError:
            time.sleep(0.1)
    return server, base


def lua_script(path: str, bodies: list[str]) -> str:
    """A wrk script that posts the bodies in turn."""
    lines = ["local bodies = {"]
    lines += [f"  {json.dumps(body)}," for body in bodies]
    lines += [
        "}",
        "local i = 0",
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        "request = function()",
        "  i = i % #bodies + 1",
        f'  return wrk.format(nil, "{path}", nil, bodies[i])',
        "end",
    ]
    file = Path(tempfile.mkdtemp()) / "post.lua"
    file.write_text("\n".join(lines))
    return str(file)


def wrk(url: str, script: str, seconds: int) -> dict:
    output = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", script, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    factor = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p99": float(p99.group(1)) * factor,
        "requests": requests,
        "acknowledged": requests - (int(bad.group(1)) if bad else 0),
    }


def paced(url: str, bodies: list[str], *, per_second: float, seconds: int) -> dict:
    """Send at a fixed rate from 32 threads; latency of every request."""
    http = urllib3.PoolManager(maxsize=32)
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    start = time.monotonic() + 0.5
    total = int(per_second * seconds)

    def sender(offset: int) -> None:
        nonlocal failures
        for n in range(offset, total, 32):
            due = start + n / per_second
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            began = time.monotonic()
            response = http.request(
                "POST", url, body=bodies[n % len(bodies)],
                headers={"Content-Type": "application/json"}, retries=False,
            )  # fmt: skip
            elapsed = time.monotonic() - began
            with lock:
                latencies.append(elapsed)
                failures += response.status >= 300

    threads = [threading.Thread(target=sender, args=(offset,)) for offset in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "sent": len(latencies),
        "failed": failures,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "rate": len(latencies) / (time.monotonic() - start),
    }


def rows(app) -> int:
    from webapp.sessions.models import AttendanceEvent

    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(AttendanceEvent))
        db.session.remove()
        return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--viewers", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    options = parser.parse_args()
    database_url = fresh_database(options.server)
    try:
        app = make_app(database_url)
        with app.app_context():
            session_id, user_ids, tokens = build(options.viewers)
        product_path = f"/sessions/{session_id}/heartbeat"
        product_bodies = [json.dumps({"token": token, "kind": "beat"}) for token in tokens]
        bare_bodies = [
            json.dumps({"session_id": session_id, "user_id": uid}) for uid in user_ids
        ]
        server, base = start_server(database_url, options.workers)
        try:
            product_script = lua_script(product_path, product_bodies)
            bare_script = lua_script("/_bench/insert", bare_bodies)
            wrk(base + product_path, product_script, 2)  # warm up both
            wrk(base + "/_bench/insert", bare_script, 2)

            per_second = options.viewers / 30
            print(f"\n(1) paced: {options.viewers} viewers every 30 s = {per_second:.0f}/s "
                  f"for {options.seconds} s, gunicorn {options.workers} sync workers\n")
            print("| endpoint | sent | failed | achieved/s | p50 | p99 |")
            print("|---|---|---|---|---|---|")
            for label, url, bodies in (
                ("heartbeat", base + product_path, product_bodies),
                ("bare insert", base + "/_bench/insert", bare_bodies),
            ):
                result = paced(url, bodies, per_second=per_second, seconds=options.seconds)
                print(f"| {label} | {result['sent']} | {result['failed']} | "
                      f"{result['rate']:.0f} | {result['p50']:.1f} ms | {result['p99']:.1f} ms |")

            print("\n(2) as fast as it goes: wrk 2 threads, 16 connections, "
                  f"{options.seconds} s, alternating, best of 3 each\n")
            results = {"heartbeat": [], "bare insert": []}
            for _round in range(3):
                results["heartbeat"].append(
                    wrk(base + product_path, product_script, options.seconds)
                )
                results["bare insert"].append(
                    wrk(base + "/_bench/insert", bare_script, options.seconds)
                )
            best = {label: max(runs, key=lambda r: r["rate"]) for label, runs in results.items()}
            print("| endpoint | req/s (best of 3) | p99 | all three runs |")
            print("|---|---|---|---|")
            for label, runs in results.items():
                print(f"| {label} | {best[label]['rate']:.0f} | {best[label]['p99']:.1f} ms | "
                      + ", ".join(f"{r['rate']:.0f}" for r in runs) + " |")
            ratio = best["heartbeat"]["rate"] / best["bare insert"]["rate"]
            print(f"\nratio heartbeat / bare insert: {ratio:.2f}×")

            print("\n(3) a gunicorn worker killed (SIGKILL) 3 s into a wrk run\n")
            before = rows(app)
            workers = subprocess.run(
                ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
            ).stdout.split()
            killer = threading.Timer(3, lambda: os.kill(int(workers[0]), signal.SIGKILL))
            killer.start()
            result = wrk(base + product_path, product_script, options.seconds)
            stored = rows(app) - before
            print("| completed responses | acknowledged (2xx) | rows stored | lost |")
            print("|---|---|---|---|")
            lost = max(0, result["acknowledged"] - stored)
            print(f"| {result['requests']} | {result['acknowledged']} | {stored} | {lost} |")

            print("\n(4) the HLS auth subrequest for a logged-in participant "
                  f"(wrk 2 threads, 16 connections, {options.seconds} s)\n")
            cookie, stream = login_cookie(app, session_id)
            script = Path(tempfile.mkdtemp()) / "auth.lua"
            script.write_text(
                f'wrk.headers["Cookie"] = "{cookie}"\n'
                f'wrk.headers["X-Original-URI"] = "/hls/{stream}-17.ts"\n'
            )
            result = wrk(base + "/streaming/hls-auth", str(script), options.seconds)
            print("| endpoint | req/s | p99 | 204 answers |")
            print("|---|---|---|---|")
            print(f"| /streaming/hls-auth | {result['rate']:.0f} | {result['p99']:.1f} ms | "
                  f"{result['acknowledged']} of {result['requests']} |")

            print("\n(5) nginx-rtmp's on_update callback (wrk 2 threads, 16 connections, "
                  f"{options.seconds} s)\n")
            from webapp.streaming.keys import callback_secret, publish_key
            from webapp.streaming.models import Stream

            with app.app_context():
                stream = db.session.get(Stream, session_id)
                body = (f"app=live&addr=127.0.0.1&clientid=7&call=update_publish"
                        f"&time=30&timestamp=30000&name={stream.name}"
                        f"&key={publish_key(stream)}")  # fmt: skip
                secret = callback_secret()
            script = Path(tempfile.mkdtemp()) / "update.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
                f"wrk.body = {json.dumps(body)}\n"
            )
            result = wrk(f"{base}/streaming/rtmp?secret={secret}", str(script), options.seconds)
            print("| callback | req/s | p99 | accepted (200) |")
            print("|---|---|---|---|")
            print(f"| update_publish | {result['rate']:.0f} | {result['p99']:.1f} ms | "
                  f"{result['acknowledged']} of {result['requests']} |")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    finally:
        drop_database(database_url)


if __name__ == "__main__":
    main()
