"""Finalisation: the worker freezes a session's attendance a while after it ends and the
organizers get a summary; later events are kept but count only when an organizer
recomputes."""

from datetime import timedelta

from sqlalchemy import select

from tests.attendance.test_reports import START, course, organizer  # noqa: F401 (fixture)
from tests.helpers import post_form
from webapp.attendance.finalise import finalise_due
from webapp.attendance.models import AttendanceFinal
from webapp.attendance.reports import session_rows
from webapp.attendance.rules import Status
from webapp.db import db, utcnow
from webapp.reminders.models import Delivery, DeliveryKind, Notification, NotificationKind
from webapp.reminders.notices import compose_notices
from webapp.reminders.texts import notice_text
from webapp.sessions.models import AttendanceKind, AttendanceSource
from webapp.streaming.broadcasts import add_attendance


def test_the_worker_finalises_after_the_delay_and_tells_the_organizers(app, course):  # noqa: F811
    session = course["session"]
    assert finalise_due(now=session.ends_at + timedelta(minutes=29)) == 0
    assert finalise_due(now=session.ends_at + timedelta(minutes=31)) == 1
    assert finalise_due(now=session.ends_at + timedelta(minutes=32)) == 0  # once
    assert db.session.get(AttendanceFinal, session.id) is not None
    attendance = Notification.kind == NotificationKind.ATTENDANCE
    [note] = db.session.scalars(select(Notification).where(attendance)).all()
    assert note.kind == NotificationKind.ATTENDANCE and note.details["counts"]["absent"] == 1
    assert note.user.email == "organizer@example.org"
    compose_notices(now=utcnow() + timedelta(minutes=5))  # once the changes have settled
    db.session.commit()
    [row] = db.session.scalars(
        select(Delivery).where(
            Delivery.kind == DeliveryKind.NOTICE, Delivery.user_id == note.user_id
        )
    )
    assert row.user_id == note.user_id
    text = notice_text(row.payload["changes"], session, session.series, "zh_CN", "Asia/Shanghai")
    assert "出勤已确定：出席 1 人、迟到 1 人" in text and "缺勤 1 人" in text
    assert f"/sessions/{session.id}/attendance" in text


def test_later_events_count_only_when_an_organizer_recomputes(app, course):  # noqa: F811
    session, absent = course["session"], course["absent"]
    finalise_due(now=session.ends_at + timedelta(hours=1))
    db.session.commit()
    # A platform record imported late: the absentee was there after all.
    for second in range(0, 7200, 30):
        add_attendance(absent.id, session.id, AttendanceSource.PLAYER, AttendanceKind.HEARTBEAT,
                       START + timedelta(seconds=second))  # fmt: skip
    db.session.commit()
    rows = {row.user.id: row for row in session_rows(session)}
    assert rows[absent.id].status == Status.ABSENT  # frozen
    client = organizer(app)
    page = f"/sessions/{session.id}/attendance"
    assert "重新计算" in client.get(page).text
    assert post_form(client, page, f"{page}/recompute", {}).status_code == 302
    db.session.expire_all()
    rows = {row.user.id: row for row in session_rows(session)}
    assert rows[absent.id].status == Status.PRESENT
    # A recomputation by hand does not message the organizers again.
    attendance = Notification.kind == NotificationKind.ATTENDANCE
    assert len(db.session.scalars(select(Notification).where(attendance)).all()) == 1
