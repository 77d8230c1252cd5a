"""Plan → compose → dispatch against a real SMTP server on 127.0.0.1."""

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from webapp.db import db
from webapp.people.models import Role
from webapp.reminders.dispatch import claim_due, dispatch_due
from webapp.reminders.models import Delivery, DeliveryKind, DeliveryStatus
from webapp.reminders.notices import (
    compose_notices,
)
from webapp.reminders.outbox import (
    retry_delivery,
)
from webapp.reminders.planning import (
    plan_reminders,
)
from webapp.reminders.reach import REASONS
from webapp.series.access import (
    active_enrollment,
)
from webapp.series.enrollment import (
    enroll,
    remove_enrollment,
)
from webapp.series.services import (
    create_series,
)
from webapp.sessions.lectures import (
    add_lecture,
)
from webapp.sessions.services import (
    cancel_session,
    create_session,
    publish_series,
    reschedule_session,
)

STARTS = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai
DAY_BEFORE = STARTS - timedelta(hours=24)


def at(moment):
    return lambda: moment


@pytest.fixture
def course(make_user, factories):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="卢沟桥乡研修班", organizer=organizer, now=DAY_BEFORE)
    session = create_session(
        series, starts_at=STARTS, ends_at=STARTS + timedelta(hours=2), title="第一天"
    )
    add_lecture(
        session,
        title="社区治理与设计文明建设",
        speakers=[factories.speaker("刘金龙")],
        starts_at=STARTS,
        ends_at=STARTS + timedelta(hours=1),
    )
    publish_series(series, now=DAY_BEFORE - timedelta(days=3))
    cadre = make_user(email="wang@example.org", name="王建国")
    abroad = make_user(email="anna@example.org", name="Anna", locale="en", timezone="Europe/Berlin")
    no_mail = make_user(phone="13910000001", name="李春梅")
    for user in (cadre, abroad, no_mail):
        enroll(user, series, now=DAY_BEFORE - timedelta(days=2), notify=False)
    db.session.commit()
    return {
        "series": series,
        "session": session,
        "cadre": cadre,
        "abroad": abroad,
        "organizer": organizer,
    }


def deliveries(*, unreachable: bool = False, **filters):
    """The outbox rows; those recording that someone cannot be reached only if asked."""
    query = select(Delivery).order_by(Delivery.id)
    if not unreachable:
        query = query.where(
            (Delivery.status != DeliveryStatus.SKIPPED)
            | Delivery.last_error.is_(None)
            | Delivery.last_error.not_in(list(REASONS))
        )
    for name, value in filters.items():
        query = query.where(getattr(Delivery, name) == value)
    return db.session.scalars(query).all()


def run_worker(app, now, worker="w1"):
    db.session.commit()
    stats = dispatch_due(worker_id=worker, now_fn=at(now))
    db.session.expire_all()
    return stats


def test_reminders_go_out_once_in_each_participants_language_and_zone(app, course, smtp_server):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    planned = plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    assert planned == 2  # the participant without an email address gets none
    assert plan_reminders(now=DAY_BEFORE - timedelta(seconds=30)) == 0  # no duplicates
    assert run_worker(app, DAY_BEFORE - timedelta(minutes=2)).claimed == 0  # not due yet
    stats = run_worker(app, DAY_BEFORE + timedelta(seconds=1))
    assert stats.sent == 2
    assert run_worker(app, DAY_BEFORE + timedelta(minutes=1)).claimed == 0  # never twice
    by_recipient = {m["To"].addresses[0].addr_spec: m for m in mailbox.messages}
    chinese = by_recipient["wang@example.org"]
    # The start time itself, and how long until it as of the moment it was sent.
    assert chinese["Subject"] == "上课提醒：卢沟桥乡研修班 — 第一天 明天 16:00开始（24小时后）"
    text = chinese.get_body(preferencelist=("plain",)).get_content()
    assert "2026年12月3日星期四 16:00–18:00 (GMT+08:00 Asia/Shanghai)" in text
    assert "《社区治理与设计文明建设》 刘金龙 教授" in text
    assert "http://localhost/sessions/" in text
    assert chinese.get_body(preferencelist=("html",)) is not None
    english = by_recipient["anna@example.org"]
    assert english["Subject"] == (
        "Reminder: 卢沟桥乡研修班 — 第一天 starts tomorrow at 09:00 (in 24 hours)"
    )
    english_text = english.get_body(preferencelist=("plain",)).get_content()
    assert (
        "Thursday, December 3, 2026 09:00\u2009–\u200911:00 (GMT+01:00 Europe/Berlin)"
        in english_text
    )
    [attachment] = list(chinese.iter_attachments())
    calendar = Calendar.from_ical(attachment.get_content())
    event = calendar.walk("VEVENT")[0]
    assert calendar["METHOD"] == "PUBLISH"
    assert str(event["UID"]) == f"session-{course['session'].id}@localhost"


def test_a_rescheduled_session_is_never_reminded_at_the_old_time(app, course, smtp_server):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    db.session.commit()
    new_start = STARTS + timedelta(days=2)
    reschedule_session(
        course["session"],
        starts_at=new_start,
        ends_at=new_start + timedelta(hours=2),
        by=course["organizer"],
        now=DAY_BEFORE - timedelta(seconds=30),
    )
    db.session.commit()
    assert {d.status for d in deliveries(kind=DeliveryKind.REMINDER)} == {DeliveryStatus.CANCELLED}
    run_worker(app, DAY_BEFORE + timedelta(seconds=1))
    reminders = [m for m in mailbox.messages if m["Subject"].startswith("上课提醒")]
    assert reminders == []
    # The planner writes the reminders for the new time, under the new sequence.
    plan_reminders(now=new_start - timedelta(hours=24, minutes=1))
    fresh = deliveries(kind=DeliveryKind.REMINDER, status=DeliveryStatus.PENDING)
    assert {d.due_at for d in fresh} == {new_start - timedelta(hours=24)}
    assert {d.sequence for d in fresh} == {course["session"].sequence}


def test_a_row_claimed_before_a_move_is_checked_again_before_sending(app, course, smtp_server):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    db.session.commit()
    # Claimed (in flight) when the organizer moves the session.
    ids = claim_due("w1", now=DAY_BEFORE, limit=10, lease=timedelta(seconds=1))
    reschedule_session(
        course["session"],
        starts_at=STARTS + timedelta(days=1),
        ends_at=STARTS + timedelta(days=1, hours=2),
        by=None,
        now=DAY_BEFORE,
    )
    db.session.commit()
    run_worker(app, DAY_BEFORE + timedelta(seconds=5), worker="w2")  # lease ran out
    assert [d.status for d in deliveries(kind=DeliveryKind.REMINDER)] == [
        DeliveryStatus.CANCELLED
    ] * len(ids)
    assert mailbox.messages == []


def test_cancellation_drops_reminders_and_sends_one_cancel_notice(app, course, smtp_server):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    cancel_session(
        course["session"],
        reason="疫情防控需要",
        by=course["organizer"],
        now=DAY_BEFORE - timedelta(minutes=1),
    )
    db.session.commit()
    assert compose_notices(now=DAY_BEFORE) == 0  # still inside the 2-minute window
    assert compose_notices(now=DAY_BEFORE + timedelta(minutes=2)) == 2
    run_worker(app, DAY_BEFORE + timedelta(minutes=2))
    messages = mailbox.messages
    assert sorted(m["Subject"] for m in messages) == [
        "Cancelled: 卢沟桥乡研修班 — 第一天",
        "课程取消：卢沟桥乡研修班 — 第一天",
    ]
    chinese = next(m for m in messages if m["Subject"].startswith("课程取消"))
    assert "原因：疫情防控需要" in chinese.get_body(preferencelist=("plain",)).get_content()
    calendar = Calendar.from_ical(next(chinese.iter_attachments()).get_content())
    event = calendar.walk("VEVENT")[0]
    assert calendar["METHOD"] == "CANCEL" and event["STATUS"] == "CANCELLED"
    assert str(event["UID"]) == f"session-{course['session'].id}@localhost"
    assert int(event["SEQUENCE"]) == course["session"].sequence


def test_several_quick_changes_make_one_message_that_says_what_changed(app, course, smtp_server):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    session = course["session"]
    first = STARTS + timedelta(hours=1)
    second = STARTS + timedelta(hours=3)
    reschedule_session(
        session, starts_at=first, ends_at=first + timedelta(hours=2), by=None, now=DAY_BEFORE
    )
    reschedule_session(
        session,
        starts_at=second,
        ends_at=second + timedelta(hours=2),
        by=None,
        now=DAY_BEFORE + timedelta(minutes=1),
    )
    db.session.commit()
    assert compose_notices(now=DAY_BEFORE + timedelta(minutes=2)) == 0  # last edit too recent
    assert compose_notices(now=DAY_BEFORE + timedelta(minutes=3, seconds=1)) == 2
    run_worker(app, DAY_BEFORE + timedelta(minutes=4))
    chinese = next(m for m in mailbox.messages if m["To"].addresses[0].addr_spec.startswith("wang"))
    text = chinese.get_body(preferencelist=("plain",)).get_content()
    assert text.count("时间变更") == 1
    assert "原定 2026年12月3日星期四 16:00–18:00" in text
    assert "现改为 2026年12月3日星期四 19:00–21:00" in text
    calendar = Calendar.from_ical(next(chinese.iter_attachments()).get_content())
    assert calendar["METHOD"] == "REQUEST"
    assert int(calendar.walk("VEVENT")[0]["SEQUENCE"]) == session.sequence == 2


def test_leaving_drops_pending_reminders(app, course):
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    remove_enrollment(active_enrollment(course["cadre"], course["series"]), now=DAY_BEFORE)
    db.session.commit()
    mine = deliveries(user_id=course["cadre"].id)
    assert [d.status for d in mine] == [DeliveryStatus.CANCELLED]


def test_after_downtime_only_the_latest_useful_reminder_goes_out(app, course):
    # The worker comes back 10 minutes before the start: the day-before reminder is stale,
    # the quarter-hour one was due 5 minutes ago and is still useful.
    plan_reminders(now=STARTS - timedelta(minutes=10))
    rows = deliveries(user_id=course["cadre"].id)
    by_rule = {d.due_at: d.status for d in rows}
    assert by_rule == {
        DAY_BEFORE: DeliveryStatus.SKIPPED,
        STARTS - timedelta(minutes=15): DeliveryStatus.PENDING,
    }


def test_nothing_is_planned_for_a_session_that_has_started(app, course):
    assert plan_reminders(now=STARTS + timedelta(minutes=1)) == 0


def test_participants_who_turned_reminders_off_get_none(app, course):
    course["cadre"].email_reminders = False
    db.session.commit()
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    assert deliveries(user_id=course["cadre"].id) == []


def test_late_enrollments_are_planned_on_the_next_sweep(app, course, make_user):
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=5))
    newcomer = make_user(email="new@example.org")
    enroll(newcomer, course["series"], now=DAY_BEFORE - timedelta(minutes=4), notify=False)
    db.session.commit()
    assert plan_reminders(now=DAY_BEFORE - timedelta(minutes=3)) == 1
    assert len(deliveries(user_id=newcomer.id)) == 1


def test_temporary_failures_retry_with_backoff_then_fail_and_can_be_retried(
    app, course, smtp_server
):
    _mailbox, url = smtp_server(data_reply="451 4.3.0 try again later")
    app.config["MAIL_URL"] = url
    app.config["DISPATCH_MAX_ATTEMPTS"] = 3
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    now = DAY_BEFORE
    run_worker(app, now)
    row = deliveries(user_id=course["cadre"].id)[0]
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
    assert "451" in row.last_error and row.due_at == now + timedelta(seconds=30)
    run_worker(app, now + timedelta(seconds=31))
    row = deliveries(user_id=course["cadre"].id)[0]
    assert row.attempts == 2 and row.due_at == now + timedelta(seconds=31 + 60)
    run_worker(app, now + timedelta(seconds=200))
    row = deliveries(user_id=course["cadre"].id)[0]
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 3)
    retry_delivery(row, now=now + timedelta(minutes=5))
    db.session.commit()
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)


def test_a_refused_recipient_fails_at_once(app, course, smtp_server):
    _mailbox, url = smtp_server(rcpt_reply="550 5.1.1 no such user")
    app.config["MAIL_URL"] = url
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    run_worker(app, DAY_BEFORE)
    assert {d.status for d in deliveries()} == {DeliveryStatus.FAILED}
    assert "refused" in deliveries()[0].last_error


def test_a_server_that_never_answers_times_out_and_is_retried(app, course, silent_server):
    app.config["MAIL_URL"] = silent_server
    app.config["MAIL_TIMEOUT"] = 0.5
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    started = datetime.now(UTC)
    run_worker(app, DAY_BEFORE)
    assert datetime.now(UTC) - started < timedelta(seconds=10)
    assert {d.status for d in deliveries()} == {DeliveryStatus.PENDING}
    assert "timed out" in deliveries()[0].last_error


def test_a_claim_whose_worker_died_is_taken_over_after_its_lease(app, course, smtp_server):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    db.session.commit()
    assert len(claim_due("dead", now=DAY_BEFORE, limit=10, lease=timedelta(minutes=2))) == 2
    assert run_worker(app, DAY_BEFORE + timedelta(minutes=1), worker="alive").claimed == 0
    assert run_worker(app, DAY_BEFORE + timedelta(minutes=3), worker="alive").sent == 2
    assert len(mailbox.messages) == 2


def test_default_mail_goes_to_files_the_admin_can_read(app, course, make_user, client):
    from tests.helpers import log_in

    plan_reminders(now=DAY_BEFORE - timedelta(minutes=1))
    run_worker(app, DAY_BEFORE)
    make_user(Role.ADMIN, email="admin@example.org")
    log_in(client, "admin@example.org")
    page = client.get("/admin/mail").get_data(as_text=True)
    assert page.count("上课提醒：卢沟桥乡研修班") == 1  # the English one is in English
    assert "Reminder: 卢沟桥乡研修班" in page
    name = page.split('href="/admin/mail/')[1].split('"')[0]
    message = client.get(f"/admin/mail/{name}").get_data(as_text=True)
    assert "invite.ics" in message
