"""Settings an admin changes at run time: stored in the database, validated, in effect at
once in this process and within seconds in the others, with their history."""

from datetime import timedelta

from sqlalchemy import select

from tests.helpers import csrf_token_from, log_in
from webapp import settings
from webapp.audit import AuditEntry
from webapp.db import db, utcnow
from webapp.people.models import Role
from webapp.reminders.models import Channel, ReminderRule
from webapp.reminders.reach import channel_order
from webapp.series.services import create_series
from webapp.settings import Setting


def _save(client, name: str, value: str):
    token = csrf_token_from(client.get("/admin/settings").text)
    return client.post(
        "/admin/settings",
        data={f"{name}-csrf_token": token, f"{name}-value": value, f"{name}-submit": "1"},
    )


def test_the_channel_order_changes_at_once_and_keeps_its_history(app, client, make_user):
    app.config.update(SMS_PROVIDER="sink", WECOM_CORP_ID="sink", CHANNEL_ORDER="wecom,sms,email")
    make_user(Role.ADMIN, email="admin@example.org", name="管理员")
    log_in(client, "admin@example.org")
    assert channel_order() == (Channel.WECOM, Channel.SMS, Channel.EMAIL)
    assert _save(client, "channel_order", "SMS， email").status_code == 302
    assert channel_order() == (Channel.SMS, Channel.EMAIL)  # this process: at once
    page = client.get("/admin/settings").text
    assert "已在此修改" in page and "wecom,sms,email" in page and "sms,email" in page
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "setting.changed")
    ).one()
    assert entry.actor_name == "管理员"
    assert (entry.details["old"], entry.details["new"]) == ("wecom,sms,email", "sms,email")
    # Empty: back to the configured default, recorded too.
    assert _save(client, "channel_order", "").status_code == 302
    assert channel_order() == (Channel.WECOM, Channel.SMS, Channel.EMAIL)
    assert db.session.get(Setting, "channel_order") is None
    assert len(db.session.scalars(select(AuditEntry)).all()) == 2


def test_a_wrong_value_is_refused_in_the_admin_s_language_and_nothing_changes(client, make_user):
    make_user(Role.ADMIN, email="admin@example.org")
    log_in(client, "admin@example.org")
    response = _save(client, "channel_order", "wecom,fax")
    assert response.status_code == 400 and "未知渠道 fax" in response.text
    response = _save(client, "reminder_minutes", "1440,15,abc")
    assert response.status_code == 400 and "请填写整数分钟数" in response.text
    response = _save(client, "attendance_share", "180")
    assert response.status_code == 400 and "请输入 1 至 100 之间的整数" in response.text
    assert db.session.scalars(select(Setting)).all() == []


def test_another_process_sees_a_saved_value_within_seconds(app, monkeypatch):
    assert settings.value("reminder_minutes") == "1440,15"
    # Another process saves a value: this one still has the value it read, for a moment.
    db.session.add(Setting(name="reminder_minutes", value="60", changed_at=utcnow()))
    db.session.commit()
    assert settings.value("reminder_minutes") == "1440,15"
    monkeypatch.setattr(settings, "CACHE_SECONDS", 0.0)
    assert settings.value("reminder_minutes") == "60"


def test_a_new_series_starts_with_the_admin_s_reminders_and_thresholds(app, make_user):
    organizer = make_user(Role.ORGANIZER)
    settings.change("reminder_minutes", "2880, 60", now=utcnow())
    settings.change("attendance_share", "90", now=utcnow())
    settings.change("attendance_late_minutes", "5", now=utcnow())
    series = create_series(title="冬训班", organizer=organizer, now=utcnow())
    db.session.commit()
    rules = db.session.scalars(
        select(ReminderRule.minutes_before).where(ReminderRule.series_id == series.id)
    ).all()
    assert sorted(rules) == [60, 2880]
    assert (series.attendance_share, series.attendance_late_minutes) == (90, 5)
    assert series.attendance_gap_minutes == 2  # not changed: the configured default
    # A series created with its own thresholds keeps them.
    own = create_series(
        title="专题班",
        organizer=organizer,
        now=utcnow() + timedelta(seconds=1),
        attendance_share=70,
    )
    assert own.attendance_share == 70


def test_the_settings_name_the_reminder_channels_as_the_reminders_do():
    assert set(settings.PERSONAL_CHANNELS) == {channel.value for channel in Channel} - {"webhook"}
