"""Honest reach: before and after a change the organizer is told how many participants will
hear of it and by which channel, and who cannot be reached and why; the participants page,
the series page, /admin/status and the channels page say the same."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.db import db, utcnow
from webapp.people.models import Role
from webapp.reminders.models import Channel, ChannelAccount, Delivery, ReminderRule, SmsTemplate
from webapp.reminders.notices import compose_notices
from webapp.reminders.outbox import beat
from webapp.reminders.planning import plan_reminders
from webapp.series.models import SeriesStatus
from webapp.sessions.services import publish_series


@pytest.fixture
def world(app, make_user, make_series):
    app.config.update(SMS_PROVIDER="sink", CHANNEL_ORDER="sms,email")
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org", locale="en")
    people = [
        make_user(phone="13910000001", name="李春梅"),
        make_user(phone="13910000002", email="wang@example.org", name="王建国"),
        make_user(email="anna@example.org", name="Anna"),
        make_user(email="off@example.org", name="赵关闭"),
    ]
    people[3].email_reminders = False  # turned notifications off
    series = make_series(organizers=[organizer], participants=people, status=SeriesStatus.DRAFT)
    publish_series(series, now=series.sessions[0].starts_at.replace(year=2026, month=11, day=1))
    db.session.commit()
    client = app.test_client()
    log_in(client, "organizer@example.org")
    return {"series": series, "session": series.sessions[0], "client": client, "people": people}


def test_before_and_after_a_reschedule_the_organizer_sees_who_will_be_told(app, world):
    client, session = world["client"], world["session"]
    url = f"/sessions/{session.id}/reschedule"
    page = client.get(url).get_data(as_text=True)
    assert "3 of 4 participants will be told (SMS 2, email 1); 1 cannot be reached." in page
    assert "赵关闭" in page and "turned off notifications" in page
    # No worker is running: the page says nothing is sent until one starts.
    assert "The message worker is not running" in page
    beat("w1", now=utcnow(), started_at=utcnow())
    db.session.commit()
    day = session.starts_at.date().isoformat()
    response = post_form(
        client, url, url, {"day": day, "start": "20:00", "end": "21:00"}, follow_redirects=True
    )
    text = response.get_data(as_text=True)
    assert "Rescheduled. 3 of 4 participants will be told (SMS 2, email 1); 1 cannot be" in text
    assert "worker is not running" not in text
    # The notices composed later agree, and the one not told is recorded with the reason.
    db.session.execute(
        Delivery.__table__.delete()  # only the notices of this change are looked at
    )
    compose_notices(now=session.starts_at, window=None)
    db.session.commit()
    rows = db.session.scalars(select(Delivery)).all()
    by_status = sorted((row.status.value, row.channel.value) for row in rows)
    assert by_status == [
        ("pending", "email"),
        ("pending", "sms"),
        ("pending", "sms"),
        ("skipped", "email"),
    ]
    manage = client.get(f"/series/{world['series'].id}/manage").get_data(as_text=True)
    assert "Messages that reached nobody" in manage and "turned off notifications: 1" in manage


def test_the_participants_page_shows_each_persons_channels_and_first_sign_in(app, world):
    page = world["client"].get(f"/series/{world['series'].id}/participants").get_data(as_text=True)
    assert page.count('class="channel channel-sms"') == 2
    assert page.count("cannot be reached") == 1
    assert page.count(">never<") == 4


def test_only_people_wecom_knows_are_counted_under_wecom(app, world):
    app.config.update(CHANNEL_ORDER="wecom,sms,email", WECOM_CORP_ID="sink")
    db.session.add(
        ChannelAccount(
            user_id=world["people"][0].id,
            channel=Channel.WECOM,
            phone=world["people"][0].phone,
            external_id="li",
            checked_at=world["session"].starts_at,
        )
    )
    db.session.commit()
    page = world["client"].get(f"/sessions/{world['session'].id}/cancel").get_data(as_text=True)
    # 王建国 has not been looked up on WeCom: he is counted under SMS, which takes the
    # message if WeCom does not know him.
    assert "3 of 4 participants will be told (WeCom 1, SMS 1, email 1)" in page
    # The participants page marks WeCom as not looked up yet for him.
    page = world["client"].get(f"/series/{world['series'].id}/participants").get_data(as_text=True)
    assert page.count("channel channel-wecom channel-unsure") == 1
    assert page.count('class="channel channel-wecom"') == 1


def test_admins_register_sms_templates_and_never_see_secrets(app, make_user):
    app.config.update(
        SMS_PROVIDER="aliyun",
        ALIYUN_ACCESS_KEY_ID="LTAI-visible-id",
        ALIYUN_ACCESS_KEY_SECRET="super-secret-value",
        ALIYUN_SMS_ENDPOINT="https://dysmsapi.aliyuncs.com/?token=zzquerytoken",
    )
    make_user(Role.ADMIN, email="admin@example.org", locale="en")
    client = app.test_client()
    log_in(client, "admin@example.org")
    page = client.get("/admin/channels").get_data(as_text=True)
    assert "super-secret-value" not in page and "zzquerytoken" not in page
    assert "LTAI-visible-id" in page and "https://dysmsapi.aliyuncs.com" in page
    response = post_form(
        client,
        "/admin/channels",
        "/admin/channels",
        {
            "kind": "reminder",
            "language": "zh_CN",
            "code": "SMS_154950909",
            "max_param_length": "35",
        },
    )
    assert response.status_code == 302
    template = db.session.scalars(select(SmsTemplate)).one()
    assert (template.code, template.max_param_length) == ("SMS_154950909", 35)
    response = post_form(
        client,
        "/admin/channels",
        "/admin/channels",
        {"kind": "reminder", "language": "zh_CN", "code": "", "max_param_length": "0"},
    )
    assert response.status_code == 400
    assert db.session.scalars(select(SmsTemplate)).one().code == "SMS_154950909"


def test_a_participant_narrows_their_channels(app, world):
    user = world["people"][1]
    client = app.test_client()
    user.password_hash = None
    from webapp.people.services import set_password

    set_password(user, "correct horse battery", now=world["session"].starts_at)
    db.session.commit()
    log_in(client, "13910000002", "correct horse battery")
    page = client.get("/account/notifications").get_data(as_text=True)
    assert "短信" in page or "SMS" in page
    post_form(
        client,
        "/account/notifications",
        "/account/notifications",
        {"email_reminders": "y", "feed_alarm_minutes": "0"},
    )
    db.session.expire_all()
    assert user.muted_channels == "sms"


def test_admin_status_counts_messages_by_channel_and_those_that_reached_nobody(
    app, world, make_user
):
    db.session.add(ReminderRule(series_id=world["series"].id, minutes_before=15))
    plan_reminders(now=world["session"].starts_at - timedelta(minutes=20))
    db.session.commit()
    make_user(Role.ADMIN, email="admin@example.org", locale="en")
    client = app.test_client()
    log_in(client, "admin@example.org")
    page = client.get("/admin/status").get_data(as_text=True)
    assert "Messages that reached nobody" in page and "turned off notifications: 1" in page
    assert "<td>SMS</td>" in page and "<td>email</td>" in page
