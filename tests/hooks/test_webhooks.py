"""Outgoing webhooks against a real receiver on 127.0.0.1 that checks each request with the
verification snippet of docs/webhooks.md: the events, their signature, retries with backoff
when the receiver fails, failures shown, redelivery by hand, the robots' address rules."""

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.attendance.finalise import finalise
from webapp.audit import AuditEntry
from webapp.db import db
from webapp.errors import InvalidInput
from webapp.hooks.services import create_hook, rotate_secret
from webapp.people.models import Role
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.models import Delivery, DeliveryKind, DeliveryStatus
from webapp.series.enrollment import enroll, remove_enrollment
from webapp.sessions.services import cancel_session, create_session, reschedule_session
from webapp.streaming.broadcasts import end_live, go_live

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def clock():
    """Events are queued at the real time of the change (the listeners' utcnow): each
    test's clock for sending runs a little ahead of it."""
    global NOW
    NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)


def documented_verify():
    """The `verify` function exactly as docs/webhooks.md gives it."""
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 (our own documentation)
    return namespace["verify"]


class Receiver:
    """A receiving system: checks the signature as documented (401 when it does not hold),
    can be told to fail, and keeps what it accepted."""

    def __init__(self, secret_holder: dict):
        self.accepted, self.refused, self.failing = [], 0, 0
        verify = documented_verify()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify(
                    secret_holder["secret"],
                    body,
                    self.headers.get("X-Yunketang-Timestamp", ""),
                    self.headers.get("X-Yunketang-Signature", ""),
                    tolerance=10**9,  # the tests' clock is fixed in the past
                )
                if not ok:
                    receiver.refused += 1
                    status = 401
                elif receiver.failing:
                    receiver.failing -= 1
                    status = 500
                else:
                    receiver.accepted.append((dict(self.headers), json.loads(body)))
                    status = 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/yunketang"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def types(self) -> list[str]:
        return [event["type"] for _headers, event in self.accepted]


@pytest.fixture
def receiver():
    holder = {"secret": ""}
    server = Receiver(holder)
    server.holder = holder
    yield server
    server.close()


def _hook(receiver, events):
    hook = create_hook("区委组织部学籍系统", receiver.url, events, now=NOW)
    receiver.holder["secret"] = hook.secret
    db.session.commit()
    return hook


def _send(at: datetime):
    dispatch_due(worker_id="w", now_fn=lambda: at)


def test_each_event_reaches_the_receiver_signed(app, receiver, make_user, make_series):
    _hook(receiver, ["session.created", "session.rescheduled", "session.cancelled",
                     "session.live", "session.ended", "enrollment.changed",
                     "attendance.finalized"])  # fmt: skip
    organizer = make_user(Role.ORGANIZER)
    cadre = make_user(name="王建国")
    series = make_series(organizers=[organizer], participants=[], sessions=1, first_start=NOW)
    session = series.sessions[0]
    later = NOW + timedelta(days=3)
    extra = create_session(series, starts_at=later, ends_at=later + timedelta(hours=2),
                           title="加课", now=NOW)  # fmt: skip
    reschedule_session(extra, starts_at=extra.starts_at + timedelta(hours=1),
                       ends_at=extra.ends_at + timedelta(hours=1), by=organizer, now=NOW,
                       reason="讲师航班改期", accept_warnings=True)  # fmt: skip
    enrollment = enroll(cadre, series, now=NOW)
    go_live(session, now=NOW + timedelta(minutes=1))
    end_live(session, now=NOW + timedelta(hours=2))
    finalise(session, now=NOW + timedelta(hours=3))
    remove_enrollment(enrollment, now=NOW + timedelta(hours=4))
    cancel_session(extra, reason="场地检修", by=organizer, now=NOW + timedelta(hours=5))
    db.session.commit()
    _send(NOW + timedelta(hours=6))

    assert receiver.refused == 0
    assert receiver.types() == [
        "session.created", "session.created", "session.rescheduled", "enrollment.changed",
        "session.live", "session.ended", "attendance.finalized", "enrollment.changed",
        "session.cancelled",
    ]  # fmt: skip
    events = {event["type"]: event for _headers, event in receiver.accepted}
    moved = events["session.rescheduled"]["data"]
    assert moved["session"]["id"] == extra.id and moved["reason"] == "讲师航班改期"
    assert moved["previous"]["starts_at"] == (NOW + timedelta(days=3)).isoformat()
    assert moved["session"]["starts_at"] == (NOW + timedelta(days=3, hours=1)).isoformat()
    assert events["attendance.finalized"]["data"]["counts"]["absent"] == 1
    statuses = [
        e["data"]["status"] for _h, e in receiver.accepted if e["type"] == "enrollment.changed"
    ]
    assert statuses == ["enrolled", "ended"]
    headers, event = receiver.accepted[0]
    assert headers["X-Yunketang-Event"] == event["type"]
    assert headers["X-Yunketang-Delivery"] == event["id"]


def test_a_change_that_rolls_back_sends_nothing_and_unwanted_events_are_not_queued(
    app, receiver, make_series
):
    _hook(receiver, ["session.cancelled"])
    series = make_series(sessions=1)
    create_session(series, starts_at=NOW + timedelta(days=9),
                   ends_at=NOW + timedelta(days=9, hours=1), now=NOW)  # fmt: skip
    cancel_session(series.sessions[0], reason="不会提交", by=None, now=NOW)
    db.session.rollback()
    db.session.commit()
    assert (
        db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.EVENT)).all() == []
    )


def test_a_failing_receiver_is_retried_with_backoff_then_shown_and_sent_again_by_hand(
    app, client, receiver, make_user, make_series
):
    hook = _hook(receiver, ["session.cancelled"])
    series = make_series(sessions=1, first_start=NOW + timedelta(days=2))
    cancel_session(series.sessions[0], reason="场地检修", by=None, now=NOW)
    db.session.commit()
    receiver.failing = 2
    _send(NOW)
    db.session.expire_all()
    delivery = db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.EVENT)).one()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert "HTTP 500" in delivery.last_error
    first_wait = delivery.due_at - NOW
    _send(NOW + timedelta(seconds=10))  # not due yet: nothing is sent
    assert receiver.accepted == [] and receiver.failing == 1
    _send(delivery.due_at)
    db.session.refresh(delivery)
    assert delivery.attempts == 2 and delivery.due_at - NOW > first_wait * 2  # backing off
    _send(delivery.due_at)
    db.session.refresh(delivery)
    assert delivery.status == DeliveryStatus.SENT and receiver.types() == ["session.cancelled"]

    # A new secret: the receiver still has the old one and refuses; that is a failure for
    # the admin to see, and once the receiver has the new secret, a redelivery by hand.
    new = rotate_secret(hook, now=NOW)
    cancel_session(make_series(sessions=1).sessions[0], reason="停电", by=None, now=NOW)
    db.session.commit()
    _send(NOW + timedelta(minutes=1))
    refused = db.session.scalars(
        select(Delivery).where(Delivery.kind == DeliveryKind.EVENT).order_by(Delivery.id.desc())
    ).first()
    assert refused.status == DeliveryStatus.FAILED and "HTTP 401" in refused.last_error
    make_user(Role.ADMIN, email="admin@example.org")
    log_in(client, "admin@example.org")
    page = client.get(f"/admin/webhooks/{hook.id}").text
    assert "HTTP 401" in page and "再次发送" in page
    receiver.holder["secret"] = new
    post_form(client, f"/admin/webhooks/{hook.id}",
              f"/admin/webhooks/{hook.id}/deliveries/{refused.id}/again", {})  # fmt: skip
    _send(NOW + timedelta(minutes=2))
    assert receiver.types() == ["session.cancelled", "session.cancelled"]
    assert receiver.accepted[1][1]["id"] == refused.payload["event"]["id"]  # the same event
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_type == "webhook")
    ).all()
    assert actions == ["webhook.created", "webhook.secret_rotated"]


def test_an_address_inside_is_refused_as_for_robots(app, make_user, client):
    app.config["OUTGOING_ALLOWED_HOSTS"] = ""
    for url in ("http://example.org/hook", "https://127.0.0.1/hook", "https://10.0.0.8/x",
                "ftp://example.org/"):  # fmt: skip
        with pytest.raises(InvalidInput):
            create_hook("内网", url, ["session.created"], now=NOW)
    make_user(Role.ADMIN, email="admin@example.org")
    log_in(client, "admin@example.org")
    response = post_form(client, "/admin/webhooks", "/admin/webhooks",
                         {"name": "内网", "url": "https://192.168.1.5/hook",
                          "events": ["session.created"]})  # fmt: skip
    assert response.status_code == 400 and "该地址指向内部网络，不能使用。" in response.text


def test_the_admin_adds_a_webhook_and_sees_its_secret_once(app, client, make_user, receiver):
    make_user(Role.ADMIN, email="admin@example.org")
    log_in(client, "admin@example.org")
    response = post_form(client, "/admin/webhooks", "/admin/webhooks",
                         {"name": "数据大屏", "url": receiver.url,
                          "events": ["session.live", "session.ended"]})  # fmt: skip
    assert response.status_code == 200
    secret = response.text.split('<code class="secret">')[1].split("</code>")[0]
    assert secret.startswith("whsec_")
    hook_page = client.get("/admin/webhooks").text.split('href="/admin/webhooks/')[1].split('"')[0]
    assert secret not in client.get(f"/admin/webhooks/{hook_page}").text
    assert "session.live, session.ended" in client.get("/admin/webhooks").text
