from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.db import db
from webapp.people.models import Role
from webapp.reminders.models import Delivery, DeliveryStatus, ReminderRule, Webhook
from webapp.reminders.outbox import (
    beat,
)


def test_new_series_get_the_default_reminders_and_organizers_change_them(
    app, make_user, make_series
):
    from webapp.series.services import (
        create_series,
    )

    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="研修班", organizer=organizer, now=datetime.now(UTC))
    db.session.commit()
    assert sorted(r.minutes_before for r in db.session.scalars(select(ReminderRule))) == [15, 1440]
    client = app.test_client()
    log_in(client, "organizer@example.org")
    url = f"/series/{series.id}/reminders"
    page = client.get(url).get_data(as_text=True)
    assert "提前 24小时" in page and "提前 15分钟" in page
    response = post_form(client, url, url, {"amount": "2", "unit": "hours"})
    assert response.status_code == 302
    response = post_form(client, url, url, {"amount": "2", "unit": "hours"})
    assert "本系列课程已有相同的提醒" in response.get_data(as_text=True)
    response = post_form(client, url, url, {"amount": "45", "unit": "days"})
    assert response.status_code == 400
    rule = db.session.scalars(select(ReminderRule).where(ReminderRule.minutes_before == 15)).one()
    post_form(client, url, f"{url}/{rule.id}/delete", {})
    assert sorted(r.minutes_before for r in db.session.scalars(select(ReminderRule))) == [120, 1440]


def test_organizers_add_and_remove_group_robots(app, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(organizers=[organizer])
    client = app.test_client()
    log_in(client, "organizer@example.org")
    url = f"/series/{series.id}/reminders"
    response = post_form(
        client,
        url,
        f"/series/{series.id}/robots",
        {
            "robot-name": "研修班群",
            "robot-kind": "wecom",
            "robot-url": "ftp://nope",
            "robot-scope": "0",
        },
    )
    assert "地址必须以 https:// 开头" in response.get_data(as_text=True)
    response = post_form(
        client,
        url,
        f"/series/{series.id}/robots",
        {
            "robot-name": "研修班群",
            "robot-kind": "wecom",
            "robot-url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
            "robot-scope": "0",
        },
    )
    assert response.status_code == 302
    webhook = db.session.scalars(select(Webhook)).one()
    assert webhook.series_id == series.id
    assert "研修班群" in client.get(url).get_data(as_text=True)
    post_form(client, url, f"/series/{series.id}/robots/{webhook.id}/delete", {})
    assert db.session.scalars(select(Webhook)).all() == []


def test_reminder_pages_are_for_the_series_organizers(app, make_user, make_series):
    make_user(email="cadre@example.org")
    series = make_series()
    client = app.test_client()
    log_in(client, "cadre@example.org")
    assert client.get(f"/series/{series.id}/reminders").status_code == 403


def test_participants_turn_email_reminders_off(app, make_user):
    user = make_user(email="cadre@example.org")
    client = app.test_client()
    log_in(client, "cadre@example.org")
    post_form(
        client, "/account/notifications", "/account/notifications", {"feed_alarm_minutes": "30"}
    )
    db.session.refresh(user)
    assert user.email_reminders is False
    assert user.feed_alarm_minutes == 30


def test_admin_status_shows_workers_and_failed_messages(app, make_user, make_series):
    make_user(Role.ADMIN, email="admin@example.org")
    series = make_series()
    now = datetime.now(UTC)
    beat("host:1", now=now, started_at=now - timedelta(hours=1))
    beat("host:2", now=now - timedelta(minutes=5), started_at=now - timedelta(hours=2))
    db.session.add(
        Delivery(
            key="x",
            kind="reminder",
            channel="email",
            series_id=series.id,
            due_at=now,
            status=DeliveryStatus.FAILED,
            attempts=5,
            last_error="550 mailbox unavailable",
        )
    )
    db.session.commit()
    client = app.test_client()
    log_in(client, "admin@example.org")
    page = client.get("/admin/status").get_data(as_text=True)
    assert "host:1" in page and "host:2" in page and "无响应" in page
    assert "550 mailbox unavailable" in page
    delivery = db.session.scalars(select(Delivery)).one()
    post_form(client, "/admin/status", f"/admin/deliveries/{delivery.id}/retry", {})
    db.session.refresh(delivery)
    assert delivery.status == DeliveryStatus.PENDING


def test_admin_pages_refuse_others(app, make_user):
    make_user(Role.ORGANIZER, email="organizer@example.org")
    client = app.test_client()
    log_in(client, "organizer@example.org")
    for url in ("/admin/status", "/admin/mail"):
        assert client.get(url).status_code == 403


def test_send_due_command_runs_the_sweeps_by_hand(app, make_user, make_series):
    result = app.test_cli_runner().invoke(args=["reminders", "send-due", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would plan" in result.output
    result = app.test_cli_runner().invoke(args=["reminders", "send-due"])
    assert result.exit_code == 0 and "planned" in result.output


def test_reminder_page_title_is_plain_text(app, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(organizers=[organizer], title="研修班")
    client = app.test_client()
    log_in(client, "organizer@example.org")
    page = client.get(f"/series/{series.id}/reminders").get_data(as_text=True)
    assert "<title>提醒 · 研修班 · 云课堂</title>" in page
