from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from tests.helpers import log_in
from webapp.db import db
from webapp.demo import data
from webapp.demo.services import first_session_day, load_demo
from webapp.people.models import Role, Speaker, Unit, UnitKind, User
from webapp.people.services import (
    authenticate,
)
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.models import Delivery
from webapp.reminders.planning import plan_reminders
from webapp.series.models import Enrollment, Series
from webapp.sessions.models import Lecture, LectureSession

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
MODELS = (User, Unit, Speaker, Series, LectureSession, Lecture, Enrollment)


def row_counts():
    return {
        model.__name__: db.session.scalar(select(func.count()).select_from(model))
        for model in MODELS
    }


@pytest.mark.parametrize(
    ("today", "thursday"),
    [
        (date(2026, 11, 30), date(2026, 12, 3)),  # Monday
        (date(2026, 12, 2), date(2026, 12, 3)),  # Wednesday
        (date(2026, 12, 3), date(2026, 12, 10)),  # Thursday: the next one
        (date(2026, 12, 5), date(2026, 12, 10)),  # Saturday
    ],
)
def test_first_session_is_the_next_thursday(today, thursday):
    assert first_session_day(today) == thursday


def test_demo_is_the_lugouqiao_cloud_classroom(app):
    load_demo(now=MONDAY)
    db.session.commit()
    series = db.session.scalars(select(Series)).one()
    assert series.title == "卢沟桥乡基层党员干部能力提升研修班"
    assert series.timezone == "Asia/Shanghai"
    assert series.is_published

    sessions = series.sessions
    assert len(sessions) == 3
    local_starts = [s.starts_at.astimezone(SHANGHAI) for s in sessions]
    assert [d.date() for d in local_starts] == [
        date(2026, 12, 3),
        date(2026, 12, 4),
        date(2026, 12, 5),
    ]
    for session in sessions:
        assert session.starts_at.astimezone(SHANGHAI).strftime("%H:%M") == "16:00"
        assert session.ends_at.astimezone(SHANGHAI).strftime("%H:%M") == "18:00"
        for lecture in session.lectures:
            assert session.starts_at <= lecture.starts_at < lecture.ends_at <= session.ends_at

    day_one = {(lec.title, lec.speakers[0].name) for lec in sessions[0].lectures}
    assert day_one == {("社区治理与设计文明建设", "刘金龙"), ("超大城市基层治理的探索", "李文钊")}
    speakers = db.session.scalars(select(Speaker)).all()
    assert len(speakers) == 5
    affiliations = {s.affiliation for s in speakers}
    assert "中国人民武装警察学院" in affiliations
    assert "中国人民大学国际关系学院" in affiliations
    topics = " ".join(lec.title for s in sessions for lec in s.lectures)
    for topic in ("治理", "生态文明", "数字治理", "疫情防控", "复工复产", "国际形势", "舆情"):
        assert topic in topics


def test_demo_participants_are_in_units(app):
    load_demo(now=MONDAY)
    db.session.commit()
    kinds = dict(db.session.execute(select(Unit.kind, func.count()).group_by(Unit.kind)).all())
    assert kinds[UnitKind.COMMUNITY] + kinds[UnitKind.VILLAGE] == 21
    assert kinds[UnitKind.BRANCH] == 5
    assert db.session.scalar(select(Unit).where(Unit.name == "大瓦窑村")).parent.name == "卢沟桥乡"
    enrolled = db.session.scalars(select(Enrollment)).all()
    assert 60 <= len(enrolled) <= 70
    office = db.session.scalar(select(Unit).where(Unit.kind == UnitKind.OFFICE))
    assert (
        db.session.scalar(select(func.count()).select_from(User).where(User.unit_id == office.id))
        >= 6
    )


def test_demo_accounts_can_log_in_with_the_printed_passwords(app):
    accounts = load_demo(now=MONDAY)
    db.session.commit()
    assert [a.role for a in accounts] == [Role.ADMIN, Role.ORGANIZER, Role.PARTICIPANT]
    for account in accounts:
        user = authenticate(account.login, account.password, now=MONDAY)
        assert user is not None and user.has_role(account.role)
    # Every cadre can log in with a mobile number too.
    assert authenticate("13910000064", data.DEMO_PASSWORDS[Role.PARTICIPANT], now=MONDAY)


def test_loading_the_demo_twice_leaves_the_same_rows(app):
    load_demo(now=MONDAY)
    db.session.commit()
    first = row_counts()
    load_demo(now=MONDAY + timedelta(hours=1))
    db.session.commit()
    assert row_counts() == first


def test_reloading_a_stale_demo_moves_its_sessions_ahead(app):
    load_demo(now=MONDAY)
    db.session.commit()
    first = row_counts()
    three_weeks_later = MONDAY + timedelta(weeks=3)
    load_demo(now=three_weeks_later)
    db.session.commit()
    assert row_counts() == first
    sessions = db.session.scalars(select(LectureSession).order_by(LectureSession.starts_at)).all()
    assert sessions[0].starts_at.astimezone(SHANGHAI).date() == date(2026, 12, 24)
    assert all(s.starts_at > three_weeks_later for s in sessions)
    assert sessions[0].starts_at.astimezone(SHANGHAI).strftime("%H:%M") == "16:00"
    lecture = sessions[0].lectures[0]
    assert lecture.starts_at.astimezone(SHANGHAI).date() == date(2026, 12, 24)
    assert sessions[0].sequence == 1  # calendars must see the move


def test_demo_has_a_liaison_for_da_wa_yao_village(app):
    load_demo(now=MONDAY)
    db.session.commit()
    village = db.session.scalar(select(Unit).where(Unit.name == "大瓦窑村"))
    assert [u.phone for u in village.liaisons] == ["+8613910000002"]


def test_the_demo_sends_every_channel_to_the_sink_an_admin_can_read(app, tmp_path):
    """`make demo` sets SMS and WeCom to the sink: the office's staff get WeCom messages
    (their ids are known), the village cadres SMS, and /admin/mail shows them all."""
    app.config.update(
        MAIL_URL=f"file://{tmp_path}",
        SMS_PROVIDER="sink",
        WECOM_CORP_ID="sink",
        CHANNEL_ORDER="wecom,sms,email",
    )
    load_demo(now=MONDAY)
    db.session.commit()
    series = db.session.scalars(select(Series)).one()
    session = series.sessions[0]
    due = session.starts_at - timedelta(minutes=15)
    plan_reminders(now=due - timedelta(minutes=1))
    db.session.commit()
    dispatch_due(worker_id="w1", now_fn=lambda: due)
    rows = db.session.scalars(
        select(Delivery).where(Delivery.session_id == session.id, Delivery.status == "sent")
    ).all()
    channels = Counter(row.channel.value for row in rows)
    office = db.session.scalar(select(Unit).where(Unit.name == data.OFFICE))
    office_staff = db.session.scalar(
        select(func.count()).select_from(User).where(User.unit_id == office.id)
    )
    assert channels["wecom"] == office_staff
    assert channels["sms"] == len(rows) - office_staff
    admin = db.session.scalars(select(User).where(User.email == data.ADMIN["email"])).one()
    client = app.test_client()
    log_in(client, admin.email, data.DEMO_PASSWORDS[Role.ADMIN])
    page = client.get("/admin/mail").get_data(as_text=True)
    assert "短信" in page and "企业微信" in page
    assert "【云课堂】上课提醒" in page
