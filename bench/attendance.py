"""Benchmark: attendance reports over a big series on PostgreSQL.

    .venv/bin/python bench/attendance.py [--sessions 100] [--participants 1000]

A published series of `sessions` two-hour sessions × `participants` enrolled participants,
about 20 player heartbeats per participant and session (one in ten absent), written by
PostgreSQL itself (INSERT … SELECT generate_series). Measured in the same run:
(1) finalising one session (every participant's record worked out and frozen) next to one
    plain SQL aggregation of that session's events (count, first, last per participant);
(2) the series matrix and the per-unit report next to one plain SQL aggregation of all the
    series' events, while the sessions are not final (every record worked out from events);
(3) the same once the worker has finalised every session (the pages read frozen records);
and the process's peak memory. Not a test: it prints a table and asserts nothing."""

import argparse
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import drop_database, fresh_database  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.db import db  # noqa: E402

SECRET = "benchmark-secret-key-0123456789abcdef"  # noqa: S105 (a benchmark's own)
BEAT = 360  # seconds a heartbeat covers: 20 beats make the two hours


def build(sessions: int, participants: int) -> int:
    from webapp.people.models import Unit, UnitKind, User
    from webapp.series.models import Enrollment, EnrollmentStatus, Series, SeriesStatus
    from webapp.sessions.models import LectureSession

    start = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    series = Series(title="出勤基准研修班", timezone="Asia/Shanghai", status=SeriesStatus.PUBLISHED)
    db.session.add(series)
    units = [Unit(name=f"第{n}村", kind=UnitKind.VILLAGE) for n in range(30)]
    db.session.add_all(units)
    db.session.flush()
    db.session.execute(
        db.insert(LectureSession),
        [dict(series_id=series.id, title=f"第{n + 1}讲", starts_at=start + timedelta(days=n),
              ends_at=start + timedelta(days=n, hours=2), published_at=start)
         for n in range(sessions)],
    )  # fmt: skip
    db.session.execute(
        db.insert(User),
        [dict(display_name=f"学员{n}", phone=f"139{n:08d}", unit_id=units[n % 30].id)
         for n in range(participants)],
    )  # fmt: skip
    db.session.execute(
        text(
            "INSERT INTO enrollment (user_id, series_id, status, source, enrolled_at, "
            "created_at, updated_at) SELECT id, :series, 'enrolled', 'import', now(), now(), "
            'now() FROM "user"'
        ),
        {"series": series.id},
    )
    # A heartbeat every 6 minutes (the app runs with HEARTBEAT_SECONDS=360 here) from the
    # start, or from 18 minutes in for one in ten (late); one in ten takes a 12-minute break
    # (three beats missed); one in ten is absent; those who came close the player (a leave)
    # a minute after their last beat.
    watching = (
        'FROM lecture_session s CROSS JOIN "user" u CROSS JOIN generate_series(0, 19) k '
        "WHERE (u.id + s.id) % 10 <> 0 AND NOT ((u.id + s.id) % 10 = 1 AND k < 3) "
        "AND NOT ((u.id + s.id) % 10 = 2 AND k BETWEEN 8 AND 10)"
    )
    db.session.execute(
        text(
            "INSERT INTO attendance_event (session_id, user_id, source, kind, at) "
            "SELECT s.id, u.id, 'player', 'heartbeat', "
            "s.starts_at + k * interval '6 minutes' + (u.id % 7) * interval '10 seconds' "
            + watching
        )
    )
    db.session.execute(
        text(
            "INSERT INTO attendance_event (session_id, user_id, source, kind, at) "
            "SELECT s.id, u.id, 'player', 'leave', "
            "s.starts_at + interval '115 minutes' + (u.id % 7) * interval '10 seconds' "
            + watching.replace("CROSS JOIN generate_series(0, 19) k ", "").replace(
                " AND NOT ((u.id + s.id) % 10 = 1 AND k < 3) "
                "AND NOT ((u.id + s.id) % 10 = 2 AND k BETWEEN 8 AND 10)",
                "",
            )
        )
    )
    db.session.commit()
    _ = Enrollment, EnrollmentStatus
    return series.id


def timed(function):
    began = time.perf_counter()
    result = function()
    return time.perf_counter() - began, result


def median_of(function, runs: int = 5) -> float:
    return statistics.median(timed(function)[0] for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--participants", type=int, default=1000)
    options = parser.parse_args()
    database_url = fresh_database(options.server)
    try:
        app = create_app(
            {
                "DATABASE_URL": database_url,
                "TESTING": True,
                "SECRET_KEY": SECRET,
                "HEARTBEAT_SECONDS": BEAT,
            }
        )
        with app.app_context():
            import flask_migrate

            flask_migrate.upgrade()
            built, series_id = timed(lambda: build(options.sessions, options.participants))
            events = db.session.scalar(text("SELECT count(*) FROM attendance_event"))
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            from webapp.attendance.finalise import finalise
            from webapp.attendance.reports import series_matrix, unit_report
            from webapp.series.models import Series
            from webapp.sessions.models import LectureSession

            session = db.session.scalars(
                db.select(LectureSession).where(LectureSession.series_id == series_id)
            ).first()
            plain_one_sql = text(
                "SELECT user_id, count(*), min(at), max(at) FROM attendance_event "
                "WHERE session_id = :session GROUP BY user_id"
            )
            plain_all_sql = text(
                "SELECT e.session_id, e.user_id, count(*), min(e.at), max(e.at) "
                "FROM attendance_event e JOIN lecture_session s ON s.id = e.session_id "
                "WHERE s.series_id = :series GROUP BY e.session_id, e.user_id"
            )

            def plain_one():
                return db.session.execute(plain_one_sql, {"session": session.id}).all()

            def plain_one_written():
                db.session.execute(text("DELETE FROM plain_record"))
                db.session.execute(
                    text(
                        "INSERT INTO plain_record SELECT user_id, count(*), min(at), max(at) "
                        "FROM attendance_event WHERE session_id = :session GROUP BY user_id"
                    ),
                    {"session": session.id},
                )
                db.session.commit()

            def finalise_one():
                finalise(session, now=datetime.now(UTC))
                db.session.commit()

            def plain_all():
                return db.session.execute(plain_all_sql, {"series": series_id}).all()

            def matrix_and_units():
                db.session.expire_all()
                matrix = series_matrix(
                    db.session.get(Series, series_id), now=datetime.now(UTC), beat_seconds=BEAT
                )
                return unit_report(matrix)

            db.session.execute(
                text(
                    "CREATE TABLE plain_record (user_id integer PRIMARY KEY, events integer, "
                    "first timestamptz, last timestamptz)"
                )
            )
            one_plain = median_of(plain_one)
            one_written = median_of(plain_one_written)
            one_final = median_of(finalise_one)  # (again: an organizer's recompute)
            db.session.execute(text("DELETE FROM attendance_final"))
            db.session.execute(text("DELETE FROM attendance_record"))
            db.session.commit()
            all_plain = median_of(plain_all, 3)
            cold = median_of(matrix_and_units, 3)
            sessions = db.session.scalars(
                db.select(LectureSession).where(LectureSession.series_id == series_id)
            ).all()
            finalise_all, _ = timed(lambda: [finalise(s, now=datetime.now(UTC)) for s in sessions])
            db.session.commit()
            frozen = median_of(matrix_and_units, 3)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"\n{options.sessions} sessions × {options.participants} participants, "
              f"{events:,} events (built in {built:.1f} s); load average {load}\n")  # fmt: skip
        print("| work (median) | product | plain SQL aggregation | ratio |")
        print("|---|---|---|---|")
        print(f"| finalise one session (5 runs) | {one_final * 1000:.1f} ms | "
              f"{one_plain * 1000:.1f} ms | {one_final / one_plain:.1f}× |")  # fmt: skip
        print(f"| series matrix + unit report, every session final (3 runs) | {frozen:.2f} s | "
              f"{all_plain:.2f} s | {frozen / all_plain:.1f}× |")  # fmt: skip
        print(f"| the same, no session final yet (3 runs) | {cold:.2f} s | {all_plain:.2f} s | "
              f"{cold / all_plain:.1f}× |")  # fmt: skip
        print(f"\nfor scale: the plain aggregation of one session written to a table (INSERT … "
              f"SELECT, committed) takes {one_written * 1000:.1f} ms; finalising is "
              f"{one_final / one_written:.1f}× that")  # fmt: skip
        print(f"\nfinalising all {len(sessions)} sessions (the worker's work, once each): "
              f"{finalise_all:.1f} s")  # fmt: skip
        print(f"\npeak memory of the process: {peak:.0f} MiB")
    finally:
        drop_database(database_url)


if __name__ == "__main__":
    main()
