"""What the sending step checks and says at the last moment, on SQLite and PostgreSQL: a
cancel committed while rows are claimed stops every reminder after it (real worker
processes); the composer's decision to mail a late change is honoured by the sender (real
worker); the message states the start time and the time left when it is sent."""

import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event, select

from tests.helpers import NOW, log_in, post_form
from tests.reminders.workers import (
    Worker,
    assert_no_tracebacks,
    due_reminders,
    start_sink,
    statuses,
    stop_all,
    wait_for,
)
from webapp.db import db, utcnow
from webapp.feeds.links import (
    token_for,
)
from webapp.feeds.models import FeedKind
from webapp.people.models import Role
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.messages import digest_text
from webapp.reminders.models import Delivery, DeliveryKind, DeliveryStatus, WebhookKind
from webapp.reminders.planning import (
    plan_reminders,
)
from webapp.reminders.rules import (
    add_rule,
    add_webhook,
    rules_for,
)
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.models import Series
from webapp.series.services import (
    create_series,
)
from webapp.sessions.models import LectureSession
from webapp.sessions.services import (
    create_session,
    publish_series,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_cancel_committed_while_rows_are_claimed_stops_every_reminder_after_it(
    app, make_user, client, tmp_path, migrated_database
):
    keys = due_reminders(2000, make_user)
    session = db.session.scalars(select(LectureSession)).one()
    sink, controller, url = start_sink(delay=0.002)
    workers = [Worker(migrated_database, url, tmp_path) for _ in range(3)]
    commits: list[float] = []
    try:
        log_in(client, "organizer@example.org")
        assert wait_for(lambda: sink.total >= 300 and statuses().get("claimed"), timeout=60)

        def noted(_session):
            commits.append(time.time())

        event.listen(db.session, "after_commit", noted)
        asked = time.time()
        page = f"/sessions/{session.id}/cancel"
        response = post_form(client, page, page, {"reason": "专家临时有事"})
        answered = time.time()
        event.remove(db.session, "after_commit", noted)
        assert response.status_code == 302
        committed = max(moment for moment in commits if asked <= moment <= answered)

        def settled():
            counts = statuses()
            return not counts.get("pending") and not counts.get("claimed")

        assert wait_for(settled, timeout=60, step=0.2), statuses()
        time.sleep(0.5)
    finally:
        stop_all(workers)
        controller.stop()
    after = [key for moment, key in sink.arrivals if moment > committed]
    print(
        f"\n{len(sink.keys)} reminders went out before the cancel; it waited "
        f"{answered - asked:.3f} s; {len(after)} after it"
    )
    assert after == [], "reminders went out after the cancel was committed"
    assert len(sink.keys) < 2000  # the cancel came in the middle
    counts = statuses()
    assert counts["sent"] == len(sink.keys)
    assert counts["cancelled"] == 2000 - len(sink.keys)
    assert set(sink.keys) <= keys
    assert sink.duplicates == 0
    assert_no_tracebacks(workers)


def local_form(moment) -> dict:
    local = moment.astimezone(SHANGHAI)
    return {"day": local.date().isoformat(), "start": local.strftime("%H:%M")}


def test_a_late_change_is_mailed_through_the_worker_to_a_subscriber_who_turned_mail_off(
    app, make_user, client, tmp_path, migrated_database
):
    """The composer decides (a move less than a day ahead, a calendar that has not fetched
    since) and the sending step honours it: the mail arrives."""
    now = utcnow()
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="研修班", organizer=organizer, now=now)
    starts = (now + timedelta(hours=3)).replace(second=0, microsecond=0)
    if not 1 <= starts.astimezone(SHANGHAI).hour < 23:
        starts -= timedelta(hours=2)  # the form takes one local day: keep clear of midnight
    session = create_session(series, starts_at=starts, ends_at=starts + timedelta(minutes=30))
    publish_series(series, now=now)
    subscriber = make_user(email="subscriber@example.org", name="订阅者")
    quiet = make_user(email="quiet@example.org", name="不订阅")
    for user in (subscriber, quiet):
        user.email_reminders = False
        enroll(user, series, now=now, notify=False)
    token_for(subscriber, FeedKind.PERSONAL, now=now).last_fetched_at = now - timedelta(hours=1)
    db.session.commit()
    sink, controller, url = start_sink()
    workers = [Worker(migrated_database, url, tmp_path, NOTICE_COALESCE_SECONDS=0)]
    try:
        log_in(client, organizer.email)
        page = f"/sessions/{session.id}/reschedule"
        new_start = starts - timedelta(minutes=20)
        form = {
            **local_form(new_start),
            "end": (new_start + timedelta(minutes=30)).astimezone(SHANGHAI).strftime("%H:%M"),
            "reason": "专家行程调整",
            "accept_warnings": "y",
        }
        assert post_form(client, page, page, form).status_code == 302
        notice = f"n:{subscriber.id}:{series.id}:{session.id}:"
        assert wait_for(lambda: any(key.startswith(notice) for key in sink.keys), timeout=60)
        time.sleep(1)
    finally:
        stop_all(workers)
        controller.stop()
    assert not any(key.startswith(f"n:{quiet.id}:") for key in sink.keys)
    row = db.session.scalars(select(Delivery).where(Delivery.key.startswith(notice))).one()
    assert row.status == DeliveryStatus.SENT and row.payload["late_change"] is True
    assert_no_tracebacks(workers)


def course_starting(make_user, starts_at) -> tuple[Series, LectureSession]:
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="研修班", organizer=organizer, now=NOW - timedelta(days=1))
    session = create_session(
        series, starts_at=starts_at, ends_at=starts_at + timedelta(hours=1), title="第一天"
    )
    publish_series(series, now=NOW - timedelta(hours=1))
    enroll(make_user(email="wang@example.org"), series, now=NOW - timedelta(hours=1), notify=False)
    db.session.commit()
    return series, session


def sent_subjects(smtp_server_mailbox) -> list[str]:
    return [message["Subject"] for message in smtp_server_mailbox.messages]


def test_a_session_created_hours_before_its_start_is_reminded_with_its_real_start(
    app, make_user, smtp_server
):
    """The day-before reminder of a session created 3 h 20 min ahead goes at once and says
    when it starts and how long is left, not '24小时后'."""
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    series, session = course_starting(make_user, NOW + timedelta(hours=3, minutes=20))
    assert plan_reminders(now=NOW) == 1  # the day-before rule, due long ago: sent now
    dispatch_due(worker_id="w", now_fn=lambda: NOW)
    [subject] = sent_subjects(mailbox)
    assert subject == "上课提醒：研修班 — 第一天 今天 13:20开始（3小时后）"


def test_a_late_reminder_says_how_long_is_left_when_it_is_sent_not_when_planned(
    app, make_user, smtp_server
):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    starts = NOW + timedelta(minutes=10)
    series, session = course_starting(make_user, starts)
    for rule in rules_for(series):
        db.session.delete(rule)
    add_rule(series, 3)
    db.session.commit()
    plan_reminders(now=NOW)
    # The worker was busy: the 3-minutes-before reminder leaves two minutes late.
    late = starts - timedelta(minutes=1)
    dispatch_due(worker_id="w", now_fn=lambda: late)
    [subject] = sent_subjects(mailbox)
    assert subject == "上课提醒：研修班 — 第一天 今天 10:10开始（1分钟后）"
    text = mailbox.messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "将于今天 10:10开始（1分钟后）" in text
    robot = add_webhook(
        name="群",
        kind=WebhookKind.WECOM,
        url="http://127.0.0.1:9/robot",
        secret=None,
        by=make_user(Role.ADMIN, email="admin@example.org"),
        series=series,
    )
    assert "今天 10:10开始（1分钟后）" in digest_text(session, robot, now=late)
    assert "今天 10:10开始（3分钟后）" in digest_text(
        session, robot, now=starts - timedelta(minutes=3)
    )


def test_a_reminder_is_never_sent_after_its_session_started_and_is_counted_as_missed(
    app, make_user, smtp_server
):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    starts = NOW + timedelta(minutes=10)
    course_starting(make_user, starts)
    plan_reminders(now=NOW)
    dispatch_due(worker_id="w", now_fn=lambda: starts + timedelta(seconds=1))
    assert mailbox.messages == []
    row = db.session.scalars(
        select(Delivery).where(
            Delivery.kind == DeliveryKind.REMINDER, Delivery.status != DeliveryStatus.SKIPPED
        )
    ).one()
    assert row.status == DeliveryStatus.MISSED
    assert row.last_error == "the session had started"


def test_a_stopped_worker_finishes_the_message_on_its_way_and_gives_its_rows_back(
    app, make_user, tmp_path, migrated_database
):
    keys = due_reminders(200, make_user)
    sink, controller, url = start_sink(delay=0.05)
    worker = Worker(migrated_database, url, tmp_path)
    try:
        assert wait_for(lambda: sink.total >= 5 and statuses().get("claimed"), timeout=60)
        asked = time.monotonic()
        worker.stop()
        stopped_in = time.monotonic() - asked
    finally:
        controller.stop()
    counts = statuses()
    print(f"\nstopped in {stopped_in:.2f} s after sending {sink.total}")
    assert stopped_in < 5
    assert "claimed" not in counts  # nothing waits for a lease to run out
    assert counts["sent"] == len(sink.keys) and sink.duplicates == 0
    assert counts["pending"] == len(keys) - len(sink.keys)
    pending = db.session.scalars(select(Delivery).where(Delivery.status == "pending")).all()
    assert all(row.attempts == 0 and row.due_at <= utcnow() for row in pending)
    assert_no_tracebacks([worker])
