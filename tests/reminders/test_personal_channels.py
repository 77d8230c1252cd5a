"""Reminders and notices by SMS (Aliyun, Tencent Cloud, a gateway), WeCom and DingTalk,
through the real dispatcher, against local servers that check requests as the platforms
do; each person is reached on the first channel that works, in the admin's order."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from flask_babel import force_locale
from sqlalchemy import delete, select

from tests.platforms import AliyunSms, DingTalk, SmsGateway, TencentSms, WeCom
from webapp.db import db
from webapp.people.models import Role
from webapp.reminders.channels import DeliveryError
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.models import (
    Channel,
    ChannelAccount,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    ReminderRule,
)
from webapp.reminders.notices import compose_notices
from webapp.reminders.outbox import sms_costs
from webapp.reminders.personal import AliyunSms as AliyunClient
from webapp.reminders.personal import sms_parts
from webapp.reminders.planning import plan_reminders
from webapp.reminders.reach import NO_CHANNEL, TURNED_OFF
from webapp.reminders.texts import SMS_KINDS, save_template, template_text
from webapp.series.enrollment import enroll
from webapp.series.services import create_series
from webapp.sessions.services import (
    cancel_session,
    create_session,
    publish_series,
    reschedule_session,
)

STARTS = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai
DUE = STARTS - timedelta(minutes=15)
LONG_TITLE = "2026年冬季基层党员干部能力提升研修班（卢沟桥乡云课堂）第一期"


@pytest.fixture
def course(make_user):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title=LONG_TITLE, organizer=organizer, now=STARTS - timedelta(days=3))
    session = create_session(
        series, starts_at=STARTS, ends_at=STARTS + timedelta(hours=2), title="第一天"
    )
    publish_series(series, now=STARTS - timedelta(days=3))
    people = {
        "mobile": make_user(phone="13910000001", name="李春梅"),
        "both": make_user(phone="13910000002", email="wang@example.org", name="王建国"),
        "mail": make_user(email="anna@example.org", name="Anna", locale="en"),
    }
    for user in people.values():
        enroll(user, series, now=STARTS - timedelta(days=2), notify=False)
    # One reminder each, 15 minutes before.
    db.session.execute(delete(ReminderRule).where(ReminderRule.minutes_before != 15))
    db.session.commit()
    return {"series": series, "session": session, "organizer": organizer, **people}


def run(now):
    db.session.commit()
    plan_reminders(now=now - timedelta(minutes=1))
    db.session.commit()
    stats = dispatch_due(worker_id="w1", now_fn=lambda: now)
    db.session.expire_all()
    return stats


def rows(**filters):
    query = select(Delivery).where(Delivery.kind == DeliveryKind.REMINDER).order_by(Delivery.id)
    for name, value in filters.items():
        query = query.where(getattr(Delivery, name) == value)
    return db.session.scalars(query).all()


def row_of(user):
    [row] = rows(user_id=user.id)
    return row


@pytest.fixture
def aliyun(app):
    server = AliyunSms()
    server.templates["SMS_100001"] = ("course", "time", "left")
    app.config.update(
        SMS_PROVIDER="aliyun",
        CHANNEL_ORDER="sms,email",
        ALIYUN_SMS_ENDPOINT=server.url,
        ALIYUN_ACCESS_KEY_ID=server.key_id,
        ALIYUN_ACCESS_KEY_SECRET=server.secret,
    )
    with app.app_context():
        save_template("reminder", "zh_CN", "SMS_100001", 35)
        db.session.commit()
    yield server
    server.close()


def test_a_mobile_only_participant_is_reminded_by_aliyun_sms_within_the_template(
    app, course, aliyun
):
    stats = run(DUE)
    assert stats.sent == 3
    sent = {message["to"]: message for message in aliyun.received}
    assert set(sent) == {"13910000001", "13910000002"}
    message = sent["13910000001"]
    assert message["template"] == "SMS_100001"
    assert message["sign"] == "云课堂"
    # Every parameter within the template's 35 characters; the long title is shortened.
    assert all(len(value) <= 35 for value in message["params"].values())
    assert message["params"]["course"].endswith("…")
    assert message["params"]["time"] == "今天 16:00"
    assert message["params"]["left"] == "15分钟后"
    row = row_of(course["mobile"])
    assert (row.status, row.channel) == (DeliveryStatus.SENT, Channel.SMS)
    # Billed as the phone counts it: 70 characters in one message, else 67 a part.
    assert row.cost == sms_parts("【云课堂】" + template_text_of(message))
    # One with only an email address gets mail: email is next in the order.
    assert row_of(course["mail"]).channel == Channel.EMAIL
    # What SMS cost, per series and month.
    billed = row.cost + row_of(course["both"]).cost
    assert sms_costs() == [(course["series"].id, LONG_TITLE, "2026-12", 2, billed)]


def template_text_of(message) -> str:
    text = template_text("reminder")
    with force_locale("zh_CN"):
        text = str(SMS_KINDS["reminder"][1])
    for name, value in message["params"].items():
        text = text.replace("${" + name + "}", value)
    return text


def test_a_wrong_aliyun_secret_is_refused_and_the_message_falls_through_to_email(
    app, course, aliyun, caplog
):
    app.config["ALIYUN_ACCESS_KEY_SECRET"] = "not-the-secret"
    with caplog.at_level(logging.DEBUG):
        run(DUE)
    both = row_of(course["both"])
    assert (both.status, both.channel) == (DeliveryStatus.SENT, Channel.EMAIL)
    assert "SignatureDoesNotMatch" in both.last_error
    assert both.tried == "sms"
    mobile = row_of(course["mobile"])
    assert mobile.status == DeliveryStatus.FAILED  # no other channel reaches her
    assert "SignatureDoesNotMatch" in mobile.last_error
    assert aliyun.received == []
    # The secret appears nowhere: not in the rows, not in the log.
    assert "not-the-secret" not in caplog.text
    assert all("not-the-secret" not in (row.last_error or "") for row in rows())


def test_a_parameter_longer_than_aliyun_allows_is_refused_like_the_platform_does(
    app, course, aliyun
):
    with app.app_context():
        save_template("reminder", "zh_CN", "SMS_100001", 40)  # the admin typed 40; it is 35
        db.session.commit()
    run(DUE)
    mobile = row_of(course["mobile"])
    assert mobile.status == DeliveryStatus.FAILED
    assert "isv.PARAM_LENGTH_LIMIT" in mobile.last_error
    assert row_of(course["both"]).channel == Channel.EMAIL


def test_an_expired_aliyun_timestamp_is_refused(app, aliyun, monkeypatch):
    original = AliyunClient.signed_body

    def stale(self, params, *, now):
        return original(self, params, now=now - timedelta(minutes=20))

    monkeypatch.setattr(AliyunClient, "signed_body", stale)
    from webapp.reminders.personal import SmsContent

    client = AliyunClient(app.config, sign_name="云课堂")
    content = SmsContent("reminder", "SMS_100001", {"course": "a", "time": "b", "left": "c"}, "x")
    with pytest.raises(DeliveryError, match="InvalidTimeStamp.Expired") as caught:
        client.send("+8613910000001", content, key="k")
    assert caught.value.permanent


def test_aliyun_throttling_falls_through_and_an_invalid_number_fails(app, course, aliyun):
    aliyun.throttle_all = True
    course["mobile"].phone = "+85251234567"  # a Hong Kong number: not a mainland mobile
    run(DUE)
    both = row_of(course["both"])
    assert (both.status, both.channel) == (DeliveryStatus.SENT, Channel.EMAIL)
    assert "isv.BUSINESS_LIMIT_CONTROL" in both.last_error
    mobile = row_of(course["mobile"])
    assert mobile.status == DeliveryStatus.FAILED
    assert "isv.MOBILE_NUMBER_ILLEGAL" in mobile.last_error


def test_throttled_sms_with_no_other_channel_waits_and_is_sent_later(app, course, aliyun):
    aliyun.throttle_all = True
    run(DUE)
    mobile = row_of(course["mobile"])
    assert mobile.status == DeliveryStatus.PENDING
    assert mobile.due_at > DUE
    aliyun.throttle_all = False
    dispatch_due(worker_id="w1", now_fn=lambda: mobile.due_at + timedelta(seconds=1))
    db.session.expire_all()
    assert row_of(course["mobile"]).status == DeliveryStatus.SENT
    assert [m["to"] for m in aliyun.received].count("13910000001") == 1


def test_per_number_daily_limit_sends_the_rest_by_the_next_channel(app, course, aliyun):
    app.config["SMS_PER_NUMBER_PER_DAY"] = 1
    run(DUE)  # one reminder each by SMS: the numbers' limit for today is reached
    later = STARTS + timedelta(hours=1)
    reschedule_session(
        course["session"],
        starts_at=later,
        ends_at=later + timedelta(hours=2),
        by=None,
        now=DUE + timedelta(minutes=1),
    )
    db.session.commit()
    compose_notices(now=DUE + timedelta(minutes=4))
    db.session.commit()
    dispatch_due(worker_id="w1", now_fn=lambda: DUE + timedelta(minutes=4))
    db.session.expire_all()
    notices = {
        row.user_id: row
        for row in db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.NOTICE))
    }
    assert notices[course["both"].id].channel == Channel.EMAIL
    assert "daily SMS limit" in notices[course["both"].id].last_error
    assert notices[course["mobile"].id].status == DeliveryStatus.FAILED
    assert len(aliyun.received) == 2


def test_a_participant_who_turned_sms_off_is_mailed_and_one_with_nothing_left_is_counted(
    app, course, aliyun
):
    course["both"].muted_channels = "sms"
    course["mobile"].muted_channels = "sms"
    run(DUE)
    assert row_of(course["both"]).channel == Channel.EMAIL
    mobile = row_of(course["mobile"])
    assert (mobile.status, mobile.last_error) == (DeliveryStatus.SKIPPED, TURNED_OFF)
    assert [m["to"] for m in aliyun.received] == []


# --- Tencent Cloud --------------------------------------------------------------------------


@pytest.fixture
def tencent(app):
    server = TencentSms()
    server.templates["1110"] = ("{1}将于{2}开始（{3}），请准时参加。", "reminder")
    app.config.update(
        SMS_PROVIDER="tencent",
        CHANNEL_ORDER="sms,email",
        TENCENT_SMS_ENDPOINT=server.url,
        TENCENT_SECRET_ID=server.secret_id,
        TENCENT_SECRET_KEY=server.secret_key,
        TENCENT_SMS_SDK_APP_ID=server.app_id,
    )
    with app.app_context():
        save_template("reminder", "zh_CN", "1110", 12)
        db.session.commit()
    yield server
    server.close()


def test_tencent_sms_goes_with_parameters_in_order_and_its_fee_is_counted(app, course, tencent):
    run(DUE)
    [message] = [m for m in tencent.received if m["to"] == "+8613910000001"]
    course_name, time_text, left = message["params"]
    assert len(course_name) == 12 and course_name.endswith("…")
    assert (time_text, left) == ("今天 16:00", "15分钟后")
    row = row_of(course["mobile"])
    assert (row.status, row.channel) == (DeliveryStatus.SENT, Channel.SMS)
    assert row.cost == 1


def test_tencent_refusals_are_recorded_and_fall_through(app, course, tencent):
    tencent.throttle_numbers.add("+8613910000002")
    course["mobile"].phone = "+85251234567"
    run(DUE)
    both = row_of(course["both"])
    assert (both.status, both.channel) == (DeliveryStatus.SENT, Channel.EMAIL)
    assert "LimitExceeded.PhoneNumberThirtySecondLimit" in both.last_error
    assert "IncorrectPhoneNumber" in row_of(course["mobile"]).last_error


def test_a_wrong_tencent_key_or_a_too_long_parameter_is_refused(app, course, tencent):
    app.config["TENCENT_SECRET_KEY"] = "wrong"
    run(DUE)
    assert "AuthFailure.SignatureFailure" in row_of(course["mobile"]).last_error
    app.config["TENCENT_SECRET_KEY"] = tencent.secret_key
    with app.app_context():
        save_template("reminder", "zh_CN", "1110", 30)
        db.session.commit()
    db.session.execute(
        Delivery.__table__.update().values(status="pending", due_at=DUE, tried=None, attempts=0)
    )
    db.session.commit()
    dispatch_due(worker_id="w1", now_fn=lambda: DUE + timedelta(seconds=5))
    db.session.expire_all()
    assert "TemplateParameterLengthLimit" in row_of(course["mobile"]).last_error


# --- WeCom and DingTalk ---------------------------------------------------------------------


@pytest.fixture
def wecom(app):
    server = WeCom()
    app.config.update(
        CHANNEL_ORDER="wecom,email",
        WECOM_ENDPOINT=server.url,
        WECOM_CORP_ID=server.corp_id,
        WECOM_SECRET=server.secret,
        WECOM_AGENT_ID=str(server.agent_id),
    )
    yield server
    server.close()


def test_wecom_finds_people_by_mobile_remembers_them_and_renews_an_expired_token(
    app, course, wecom
):
    wecom.people = {"13910000001": "LiChunMei", "13910000002": "WangJianGuo"}
    run(DUE)
    assert {m["to"] for m in wecom.received} == {"LiChunMei", "WangJianGuo"}
    text = next(m["text"] for m in wecom.received if m["to"] == "LiChunMei")
    assert "今天 16:00开始（15分钟后）" in text and "http://localhost/sessions/" in text
    assert wecom.token_requests == 1  # one token for every message
    assert row_of(course["mobile"]).channel == Channel.WECOM
    assert row_of(course["mail"]).channel == Channel.EMAIL
    account = db.session.get(ChannelAccount, (course["mobile"].id, Channel.WECOM))
    assert account.external_id == "LiChunMei"
    # Next time: the remembered id, no lookup; the token expired meanwhile and is renewed.
    wecom.expire_tokens()
    wecom.people = {}  # a lookup now would fail: the remembered id must be used
    cancel_session(course["session"], reason="场地调整", by=None, now=DUE)
    db.session.commit()
    compose_notices(now=DUE + timedelta(minutes=3))
    db.session.commit()
    wecom.people = {"-": "LiChunMei", "--": "WangJianGuo"}  # known ids, no mobile match
    dispatch_due(worker_id="w1", now_fn=lambda: DUE + timedelta(minutes=3))
    notices = [m for m in wecom.received if "取消" in m["text"]]
    assert {m["to"] for m in notices} == {"LiChunMei", "WangJianGuo"}
    assert wecom.token_requests == 2


def test_someone_wecom_does_not_know_is_sent_by_the_next_channel_and_remembered(
    app, course, wecom, aliyun
):
    app.config["CHANNEL_ORDER"] = "wecom,sms,email"
    wecom.people = {"13910000002": "WangJianGuo"}
    run(DUE)
    mobile = row_of(course["mobile"])
    assert (mobile.status, mobile.channel, mobile.tried) == (
        DeliveryStatus.SENT,
        Channel.SMS,
        "wecom",
    )
    assert "46004" in mobile.last_error
    assert db.session.get(ChannelAccount, (course["mobile"].id, Channel.WECOM)).external_id is None
    # The next message is planned for SMS straight away (WeCom said it has nobody).
    from webapp.reminders.reach import channels_of_users

    assert channels_of_users([course["mobile"]], now=DUE)[course["mobile"].id] == [Channel.SMS]


def test_throttled_wecom_falls_through(app, course, wecom):
    wecom.people = {"13910000002": "WangJianGuo"}
    wecom.throttled = True
    run(DUE)
    both = row_of(course["both"])
    assert (both.status, both.channel) == (DeliveryStatus.SENT, Channel.EMAIL)
    assert "45009" in both.last_error
    mobile = row_of(course["mobile"])
    assert mobile.status == DeliveryStatus.FAILED  # WeCom has nobody with her number


@pytest.fixture
def dingtalk(app):
    server = DingTalk()
    app.config.update(
        CHANNEL_ORDER="dingtalk,email",
        DINGTALK_ENDPOINT=server.url,
        DINGTALK_APP_KEY=server.app_key,
        DINGTALK_APP_SECRET=server.app_secret,
        DINGTALK_AGENT_ID=str(server.agent_id),
    )
    yield server
    server.close()


def test_dingtalk_work_notifications_reach_people_found_by_mobile(app, course, dingtalk):
    dingtalk.people = {"13910000001": "manager4220"}
    run(DUE)
    [message] = dingtalk.received
    assert message["to"] == "manager4220"
    assert "今天 16:00开始" in message["text"]
    assert row_of(course["mobile"]).channel == Channel.DINGTALK
    both = row_of(course["both"])
    assert (both.channel, both.tried) == (Channel.EMAIL, "dingtalk")
    assert "60121" in both.last_error


def test_dingtalk_with_a_wrong_secret_falls_through(app, course, dingtalk):
    dingtalk.people = {"13910000002": "wang"}
    app.config["DINGTALK_APP_SECRET"] = "wrong"
    run(DUE)
    both = row_of(course["both"])
    assert (both.status, both.channel) == (DeliveryStatus.SENT, Channel.EMAIL)
    assert "40089" in both.last_error
    assert row_of(course["mobile"]).status == DeliveryStatus.FAILED


def test_with_no_channel_for_mobile_numbers_a_mobile_only_participant_is_counted_unreached(
    app, course
):
    run(DUE)  # the default: email only
    mobile = row_of(course["mobile"])
    assert (mobile.status, mobile.last_error) == (DeliveryStatus.SKIPPED, NO_CHANNEL)


@pytest.fixture
def gateway(app):
    server = SmsGateway()
    app.config.update(
        SMS_PROVIDER="gateway",
        CHANNEL_ORDER="sms,email",
        SMS_GATEWAY_URL=server.url + "/send",
        SMS_GATEWAY_SECRET=server.secret,
    )
    yield server
    server.close()


def test_a_generic_sms_gateway_gets_the_full_text_as_signed_json(app, course, gateway):
    run(DUE)
    [message] = [m for m in gateway.received if m["to"] == "+8613910000001"]
    assert message["text"].startswith("【云课堂】上课提醒：")
    assert message["params"]["time"] == "今天 16:00"
    assert row_of(course["mobile"]).channel == Channel.SMS


def test_a_gateway_refusing_the_signature_falls_through(app, course, gateway):
    app.config["SMS_GATEWAY_SECRET"] = "not-it"
    run(DUE)
    assert gateway.received == []
    both = row_of(course["both"])
    assert (both.channel, both.tried) == (Channel.EMAIL, "sms")
    assert "gateway HTTP 401" in both.last_error


def test_dingtalk_renews_an_expired_token_and_a_throttled_notification_falls_through(
    app, course, dingtalk
):
    dingtalk.people = {"13910000001": "li", "13910000002": "wang"}
    # A token from an earlier run, expired meanwhile on the platform's side.
    run(DUE)
    assert dingtalk.token_requests == 1
    dingtalk.expire_tokens()
    dingtalk.throttled = True
    cancel_session(course["session"], reason="场地调整", by=None, now=DUE)
    db.session.commit()
    compose_notices(now=DUE + timedelta(minutes=3))
    db.session.commit()
    dispatch_due(worker_id="w1", now_fn=lambda: DUE + timedelta(minutes=3))
    db.session.expire_all()
    assert dingtalk.token_requests == 2  # renewed once, then the platform said "throttled"
    notices = {
        row.user_id: row
        for row in db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.NOTICE))
    }
    both = notices[course["both"].id]
    assert (both.status, both.channel) == (DeliveryStatus.SENT, Channel.EMAIL)
    assert "90018" in both.last_error
    # No other channel for her: tried again later, when the platform may take it.
    assert notices[course["mobile"].id].status == DeliveryStatus.PENDING
