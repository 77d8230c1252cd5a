"""One bad row fails alone: a row whose own content makes sending fail is marked failed with
its error, and every other row of the batch goes out exactly once (real SMTP, real HTTP)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tests.helpers import post_form
from tests.reminders.test_webhooks import receiver  # noqa: F401  (a real HTTP receiver)
from webapp.db import db
from webapp.people.models import Role
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Webhook,
    WebhookKind,
)
from webapp.reminders.planning import (
    plan_reminders,
)
from webapp.reminders.rules import (
    add_webhook,
)
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.services import (
    create_series,
)
from webapp.sessions.services import (
    create_session,
    publish_series,
)

STARTS = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
DUE = STARTS - timedelta(minutes=15)


def _course(make_user, participants: int):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(
        title="卢沟桥乡研修班", organizer=organizer, now=STARTS - timedelta(days=5)
    )
    session = create_session(
        series, starts_at=STARTS, ends_at=STARTS + timedelta(hours=2), title="第一天"
    )
    publish_series(series, now=STARTS - timedelta(days=4))
    people = [
        make_user(email=f"cadre{n}@example.org", name=f"学员{n}") for n in range(participants)
    ]
    for person in people:
        enroll(person, series, now=STARTS - timedelta(days=3), notify=False)
    db.session.commit()
    return series, session, people


def _poisoned_notice(series, session, user) -> Delivery:
    """A notice written by an older version, whose change record lacks the times: rendering
    it raises KeyError, which is no delivery error of the channel's."""
    return Delivery(
        key="poison",
        kind=DeliveryKind.NOTICE,
        channel=Channel.EMAIL,
        series_id=series.id,
        session_id=session.id,
        user_id=user.id,
        due_at=DUE - timedelta(minutes=1),
        sequence=session.sequence,
        payload={"changes": [{"kind": "rescheduled", "details": {}}]},
        created_at=DUE - timedelta(minutes=2),
    )


def test_a_poisoned_email_fails_alone_and_the_other_100_go_out_once(app, make_user, smtp_server):
    mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    series, session, people = _course(make_user, 100)
    plan_reminders(now=DUE - timedelta(minutes=1))
    poison = _poisoned_notice(series, session, people[0])
    db.session.add(poison)
    db.session.commit()
    stats = dispatch_due(worker_id="w1", now_fn=lambda: DUE + timedelta(seconds=1))
    assert stats.sent == 100
    assert len(mailbox.messages) == 100
    db.session.expire_all()
    poison = db.session.get(Delivery, poison.id)
    assert poison.status == DeliveryStatus.FAILED
    assert "KeyError" in poison.last_error
    statuses = db.session.scalars(
        select(Delivery.status).where(
            Delivery.id != poison.id, Delivery.status != DeliveryStatus.SKIPPED
        )
    ).all()  # (the day-before reminders are skipped: a later one is due as well)
    assert set(statuses) == {DeliveryStatus.SENT} and len(statuses) == 100
    # Nothing is left claimed, and another sweep sends nothing twice.
    dispatch_due(worker_id="w2", now_fn=lambda: DUE + timedelta(minutes=5))
    assert len(mailbox.messages) == 100


def test_the_admin_sees_the_poisoned_row_and_can_retry_it(app, make_user, smtp_server):
    _mailbox, url = smtp_server()
    app.config["MAIL_URL"] = url
    series, session, people = _course(make_user, 1)
    db.session.add(_poisoned_notice(series, session, people[0]))
    admin = make_user(Role.ADMIN, email="admin@example.org")
    db.session.commit()
    dispatch_due(worker_id="w1", now_fn=lambda: DUE + timedelta(seconds=1))
    client = app.test_client()
    from tests.helpers import log_in

    log_in(client, admin.email)
    page = client.get("/admin/status").get_data(as_text=True)
    assert "KeyError" in page
    delivery = db.session.scalars(select(Delivery)).one()
    response = post_form(client, "/admin/status", f"/admin/deliveries/{delivery.id}/retry", {})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Delivery, delivery.id).status == DeliveryStatus.PENDING


def test_a_poisoned_robot_fails_alone_and_the_other_100_digests_go_out_once(
    app,
    make_user,
    receiver,  # noqa: F811
):
    series, session, _people = _course(make_user, 1)
    admin = make_user(Role.ADMIN, email="admin@example.org")
    for n in range(101):
        add_webhook(
            by=admin,
            name=f"群{n}",
            kind=WebhookKind.GENERIC,
            url=f"{receiver.url}/robot/{n}",
            secret=None,
            series=series,
        )
    db.session.commit()
    # An address stored before it was checked (an older version): it cannot even be parsed.
    first = db.session.scalars(select(Webhook).order_by(Webhook.id)).first()
    db.session.execute(
        update(Webhook).where(Webhook.id == first.id).values(url="https://[::1/robot")
    )
    db.session.commit()
    plan_reminders(now=DUE - timedelta(minutes=1))
    db.session.commit()
    dispatch_due(worker_id="w1", now_fn=lambda: DUE + timedelta(seconds=1))
    digests = db.session.scalars(
        select(Delivery)
        .where(Delivery.channel == Channel.WEBHOOK, Delivery.status != DeliveryStatus.SKIPPED)
        .order_by(Delivery.id)
    ).all()
    assert len(digests) == 101
    failed = [d for d in digests if d.status == DeliveryStatus.FAILED]
    assert [d.webhook_id for d in failed] == [first.id]
    assert failed[0].last_error
    assert len(receiver.requests) == 100
    assert len({path for path, _headers, _body in receiver.requests}) == 100
    dispatch_due(worker_id="w2", now_fn=lambda: DUE + timedelta(minutes=5))
    assert len(receiver.requests) == 100
