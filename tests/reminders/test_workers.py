"""Real worker processes (python -m scheduler) sharing the work through PostgreSQL, with one
of them killed (SIGKILL) in the middle of sending."""

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update

from tests.reminders.workers import (
    RobotReceiver,
    Worker,
    assert_no_tracebacks,
    due_reminders,
    published_series,
    start_sink,
    statuses,
    stop_all,
    wait_for,
)
from webapp.db import db, utcnow
from webapp.people.models import Role
from webapp.reminders.models import Delivery, DeliveryKind, DeliveryStatus, Webhook, WebhookKind
from webapp.reminders.planning import (
    plan_reminders,
)
from webapp.sessions.models import LectureSession

pytestmark = pytest.mark.postgresql_only

LEASE = 10  # the product's default DISPATCH_LEASE_SECONDS


def holding(worker: Worker) -> int:
    """How many rows the worker has claimed and not finished."""
    count = db.session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.claimed_by == worker.id, Delivery.status == DeliveryStatus.CLAIMED)
    )
    db.session.commit()
    return count


def test_three_workers_plan_at_once_and_deliver_2000_reminders_exactly_once(
    app, make_user, tmp_path, migrated_database
):
    """The three planners write the same rows at the same moment: no conflict is logged,
    and every reminder goes out once."""
    due_reminders(2000, make_user, plan=False)
    sink, controller, url = start_sink()
    workers = [Worker(migrated_database, url, tmp_path) for _ in range(3)]
    try:
        assert wait_for(lambda: sink.total >= 2000, timeout=120), sink.total
        time.sleep(1)  # anything sent twice would arrive now
    finally:
        stop_all(workers)
        controller.stop()
    # The day-before reminder was due long ago and the quarter-hour one is due now: only the
    # latest goes out, the other is skipped by design.
    assert statuses() == {"sent": 2000, "skipped": 2000}
    keys = set(db.session.scalars(select(Delivery.key).where(Delivery.status == "sent")))
    assert set(sink.keys) == keys
    assert sink.duplicates == 0, "some reminder was delivered twice"
    senders = db.session.scalars(select(Delivery.claimed_by).distinct()).all()
    assert len(senders) >= 2, f"the work was not shared: {senders}"
    assert_no_tracebacks(workers)


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_at_most_its_message_in_flight(
    app, make_user, tmp_path, migrated_database
):
    keys = due_reminders(2000, make_user)
    sink, controller, url = start_sink(delay=0.003)
    workers = [Worker(migrated_database, url, tmp_path) for _ in range(3)]
    victim = workers[0]
    try:
        # Kill it while it holds rows and has sent some of them.
        assert wait_for(lambda: sink.total >= 200 and holding(victim) >= 10, timeout=60)
        victim.kill()
        killed_at = time.monotonic()
        held = holding(victim)
        assert wait_for(lambda: len(sink.keys) >= 2000, timeout=60), len(sink.keys)
        taken_over_within = time.monotonic() - killed_at
        time.sleep(1)
    finally:
        stop_all(workers)
        controller.stop()
    assert set(sink.keys) == keys  # nothing lost
    print(
        f"\nkilled holding {held} rows; {sink.duplicates} duplicate(s); all delivered "
        f"{taken_over_within:.1f} s after the kill"
    )
    # One SMTP connection: at most the one message it was sending can arrive twice.
    assert sink.duplicates <= 1
    assert taken_over_within < LEASE + 5  # its rows were taken over within the lease
    assert statuses() == {"sent": 2000, "skipped": 2000}
    taken = db.session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.taken_from == victim.id)
    )
    assert 1 <= taken <= held + 1
    assert_no_tracebacks(workers[1:])


def test_a_dead_workers_reminders_taken_over_after_the_start_are_counted_as_missed(
    app, make_user, client, tmp_path, migrated_database
):
    """Nothing is lost silently: what the dead worker held and could not usefully go any more
    is 'missed' (or 'in doubt' for the one it was sending), with the worker named on
    /admin/status; every message that arrived is recorded as sent (or in doubt)."""
    from tests.helpers import log_in

    keys = due_reminders(60, make_user)
    starts_at = utcnow() + timedelta(seconds=6)
    db.session.execute(update(LectureSession).values(starts_at=starts_at))
    db.session.commit()
    sink, controller, url = start_sink(delay=0.1)
    first = Worker(migrated_database, url, tmp_path)
    workers = [first]
    try:
        assert wait_for(lambda: sink.total >= 5 and holding(first) >= 10, timeout=60)
        first.kill()
        workers.append(Worker(migrated_database, url, tmp_path))

        def settled():
            counts = statuses()
            return not counts.get("pending") and not counts.get("claimed")

        assert wait_for(settled, timeout=60, step=0.2), statuses()
    finally:
        stop_all(workers)
        controller.stop()
    assert utcnow() > starts_at
    rows = {
        row.key: row for row in db.session.scalars(select(Delivery).where(Delivery.key.in_(keys)))
    }
    arrived = set(sink.keys)
    missed = {key for key, row in rows.items() if row.status == DeliveryStatus.MISSED}
    in_doubt = {key for key, row in rows.items() if row.status == DeliveryStatus.IN_DOUBT}
    sent = {key for key, row in rows.items() if row.status == DeliveryStatus.SENT}
    assert missed, "the dead worker's rows should have been taken over after the start"
    # Late rows are the dead worker's (taken over after the start) or, if the second worker
    # was still sending its own when the session started, its own.
    second = workers[1]
    assert {rows[key].taken_from for key in missed} - {None} == {first.id}
    assert all(
        rows[key].taken_from == first.id or rows[key].claimed_by == second.id for key in missed
    )
    assert all(rows[key].taken_from == first.id for key in in_doubt)
    assert all(rows[key].last_error == "the session had started" for key in missed)
    assert len(in_doubt) <= 1
    assert not (missed & arrived), "a delivered message was recorded as missed"
    assert arrived <= sent | in_doubt
    assert sent <= arrived
    assert sent | missed | in_doubt == keys
    assert sink.duplicates <= 1

    admin = make_user(Role.ADMIN, email="admin@example.org")
    log_in(client, admin.email)
    page = client.get("/admin/status").get_data(as_text=True)
    assert "错过" in page and first.id in page
    from_dead = sum(1 for key in missed if rows[key].taken_from == first.id)
    missed_section = page.split("未能及时发出的消息", 1)[1]
    row = re.search(
        rf"<tr[^>]*>((?:(?!</tr>).)*{re.escape(first.id)}(?:(?!</tr>).)*)</tr>",
        missed_section,
        re.S,
    )
    assert row and "已停止" in row.group(1) and f"<td>{from_dead}</td>" in row.group(1)
    assert_no_tracebacks(workers[1:])


def test_robot_digests_survive_a_killed_worker(app, make_user, tmp_path, migrated_database):
    """300 group robots, one digest each: a worker killed in the middle repeats at most the
    one it was posting and loses none."""
    now = utcnow()
    series = published_series(make_user, "研修班")
    receiver = RobotReceiver(delay=0.02)
    db.session.execute(
        insert(Webhook),
        [
            {
                "name": f"群{n}",
                "kind": WebhookKind.WECOM,
                "url": f"{receiver.url}/robot/{n}",
                "series_id": series.id,
                "is_active": True,
                "mentions_absent": False,
                "created_at": now,
            }
            for n in range(300)
        ],
    )
    db.session.commit()
    plan_reminders(now=now)
    db.session.commit()
    assert statuses() == {"pending": 300, "skipped": 300}  # the day-before digests: superseded
    sink, controller, url = start_sink()
    workers = [Worker(migrated_database, url, tmp_path) for _ in range(3)]
    victim = workers[0]
    try:
        assert wait_for(lambda: receiver.paths.total() >= 30 and holding(victim) >= 5, timeout=60)
        victim.kill()
        assert wait_for(lambda: len(receiver.paths) >= 300, timeout=60), len(receiver.paths)
        time.sleep(1)
    finally:
        stop_all(workers)
        controller.stop()
        receiver.close()
    assert set(receiver.paths) == {f"/robot/{n}" for n in range(300)}
    duplicates = sum(count - 1 for count in receiver.paths.values())
    print(f"\n{duplicates} duplicate digest(s)")
    assert duplicates <= 1
    assert statuses() == {"sent": 300, "skipped": 300}
    assert (
        db.session.scalar(
            select(func.count()).where(
                Delivery.kind == DeliveryKind.DIGEST, Delivery.taken_from == victim.id
            )
        )
        >= 1
    )
    assert_no_tracebacks(workers[1:])


def test_the_outcome_writer_gives_its_connection_back_as_it_came(app):
    """The dispatcher's second connection writes in autocommit; back in the pool it must
    take transactions again, or the next job on it (feeds, with savepoints) fails. Found by
    the freshness benchmark: the real worker's publishing failed after its first dispatch."""
    from webapp.reminders.outcomes import outcome_writer

    with outcome_writer("probe"):
        pass
    held = [db.engine.raw_connection() for _ in range(db.engine.pool.checkedin() + 1)]
    try:
        assert [raw.driver_connection.autocommit for raw in held] == [False] * len(held)
    finally:
        for raw in held:
            raw.close()
    with db.session.begin_nested():  # a savepoint, on whichever connection comes
        db.session.execute(select(1))
    db.session.rollback()
