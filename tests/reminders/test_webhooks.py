"""Group robots against a real HTTP receiver on 127.0.0.1."""

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import insert, select

from webapp.db import db
from webapp.people.models import Role, UnitKind
from webapp.people.units import (
    create_unit,
)
from webapp.reminders.channels import WebhookChannel, dingtalk_signed_url
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


class Receiver:
    """Records every POST; answers with `reply` (a dict) or an HTTP status."""

    def __init__(self):
        self.requests = []
        self.reply = {"errcode": 0, "errmsg": "ok"}
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                payload = json.dumps(receiver.reply).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def bodies(self):
        return [json.loads(body) for _path, _headers, body in self.requests]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def course(make_user):
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    village = create_unit("大瓦窑村", UnitKind.VILLAGE, township)
    other = create_unit("小瓦窑村", UnitKind.VILLAGE, township)
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="研修班", organizer=organizer, now=STARTS - timedelta(days=5))
    session = create_session(
        series, starts_at=STARTS, ends_at=STARTS + timedelta(hours=2), title="第一天"
    )
    publish_series(series, now=STARTS - timedelta(days=4))
    members = [make_user(phone=f"1391000000{n}", unit=village) for n in range(1, 4)]
    for member in members:
        enroll(member, series, now=STARTS - timedelta(days=3), notify=False)
    db.session.commit()
    admin = make_user(Role.ADMIN, email="admin@example.org")
    return {
        "series": series,
        "session": session,
        "village": village,
        "other": other,
        "admin": admin,
    }


def test_one_message_per_unit_group_not_one_per_person(app, course, receiver):
    add_webhook(
        by=course["admin"],
        name="大瓦窑村群",
        kind=WebhookKind.WECOM,
        url=f"{receiver.url}/wecom",
        secret=None,
        unit=course["village"],
    )
    add_webhook(
        by=course["admin"],
        name="小瓦窑村群",
        kind=WebhookKind.WECOM,
        url=f"{receiver.url}/other",
        secret=None,
        unit=course["other"],
    )  # nobody of theirs is enrolled
    add_webhook(
        by=course["admin"],
        name="研修班群",
        kind=WebhookKind.DINGTALK,
        url=f"{receiver.url}/ding",
        secret="SEC123",
        series=course["series"],
    )
    db.session.commit()
    plan_reminders(now=DUE - timedelta(minutes=1))
    db.session.commit()
    dispatch_due(worker_id="w", now_fn=lambda: DUE)
    paths = sorted(urlsplit(path).path for path, _h, _b in receiver.requests)
    assert paths == ["/ding", "/wecom"]
    wecom = next(json.loads(b) for p, _h, b in receiver.requests if p.startswith("/wecom"))
    assert wecom["msgtype"] == "text"
    assert "上课提醒：研修班 — 第一天" in wecom["text"]["content"]
    assert "本单位已报名 3 人" in wecom["text"]["content"]
    ding_path = next(p for p, _h, _b in receiver.requests if p.startswith("/ding"))
    query = parse_qs(urlsplit(ding_path).query)
    timestamp = query["timestamp"][0]
    expected = base64.b64encode(
        hmac.new(b"SEC123", f"{timestamp}\nSEC123".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"][0] == expected


def test_a_robot_gets_at_most_20_messages_a_minute_and_the_rest_wait(app, course, receiver):
    webhook = add_webhook(
        by=course["admin"],
        name="群",
        kind=WebhookKind.WECOM,
        url=receiver.url,
        secret=None,
        series=course["series"],
    )
    db.session.execute(
        insert(Delivery),
        [
            {
                "key": f"w:test:{n}",
                "kind": DeliveryKind.DIGEST,
                "channel": Channel.WEBHOOK,
                "series_id": course["series"].id,
                "session_id": course["session"].id,
                "webhook_id": webhook.id,
                "sequence": course["session"].sequence,
                "payload": {},
                "due_at": DUE,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "created_at": DUE,
            }
            for n in range(25)
        ],
    )
    db.session.commit()
    dispatch_due(worker_id="w", now_fn=lambda: DUE)
    assert len(receiver.requests) == 20
    waiting = db.session.scalars(
        select(Delivery).where(Delivery.status == DeliveryStatus.PENDING)
    ).all()
    assert len(waiting) == 5
    assert all(d.due_at >= DUE + timedelta(seconds=59) and d.attempts == 0 for d in waiting)
    dispatch_due(worker_id="w", now_fn=lambda: DUE + timedelta(seconds=61))
    assert len(receiver.requests) == 25


def test_a_throttled_robot_backs_off(app, course, receiver):
    receiver.reply = {"errcode": 45009, "errmsg": "api freq out of limit"}
    webhook = add_webhook(
        by=course["admin"],
        name="群",
        kind=WebhookKind.WECOM,
        url=receiver.url,
        secret=None,
        series=course["series"],
    )
    db.session.commit()
    plan_reminders(now=DUE - timedelta(minutes=1))
    db.session.commit()
    dispatch_due(worker_id="w", now_fn=lambda: DUE)
    row = db.session.scalars(
        select(Delivery).where(
            Delivery.webhook_id == webhook.id, Delivery.status != DeliveryStatus.SKIPPED
        )
    ).one()
    db.session.refresh(webhook)
    assert row.status == DeliveryStatus.PENDING and "throttled" in row.last_error
    assert webhook.throttled_until == DUE + timedelta(seconds=60)
    receiver.reply = {"errcode": 0}
    dispatch_due(worker_id="w", now_fn=lambda: DUE + timedelta(seconds=30))
    assert len(receiver.requests) == 1  # still backing off
    dispatch_due(worker_id="w", now_fn=lambda: DUE + timedelta(seconds=61))
    assert len(receiver.requests) == 2
    db.session.refresh(row)
    assert row.status == DeliveryStatus.SENT


def test_generic_webhooks_are_signed(app):
    webhook = Webhook(
        name="x", kind=WebhookKind.GENERIC, url="https://example.org/hook", secret="s3cret"
    )
    now = datetime(2026, 12, 3, tzinfo=UTC)
    url, body, headers = WebhookChannel.request_for(
        webhook, "文本", mobiles=[], data={"a": 1}, now=now
    )
    timestamp = headers["X-Yunketang-Timestamp"]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Yunketang-Signature"] == f"sha256={expected}"
    assert json.loads(body) == {"text": "文本", "mentions": [], "a": 1}


def test_mentions_use_the_plain_text_type_with_mobile_numbers(app):
    webhook = Webhook(name="x", kind=WebhookKind.WECOM, url="https://example.org/hook")
    _url, body, _headers = WebhookChannel.request_for(
        webhook, "请尽快进入课堂", mobiles=["13910000001"], data={}, now=datetime.now(UTC)
    )
    assert json.loads(body) == {
        "msgtype": "text",
        "text": {"content": "请尽快进入课堂", "mentioned_mobile_list": ["13910000001"]},
    }
    ding = Webhook(name="y", kind=WebhookKind.DINGTALK, url="https://example.org/robot")
    _url, body, _headers = WebhookChannel.request_for(
        ding, "请尽快进入课堂", mobiles=["13910000001"], data={}, now=datetime.now(UTC)
    )
    assert json.loads(body)["at"] == {"atMobiles": ["13910000001"], "isAtAll": False}


def test_dingtalk_signature_matches_the_documented_algorithm(app):
    now = datetime.fromtimestamp(1_600_000_000, tz=UTC)
    url = dingtalk_signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", "SEC", now=now)
    query = parse_qs(urlsplit(url).query)
    assert query["timestamp"] == ["1600000000000"]
    digest = hmac.new(b"SEC", b"1600000000000\nSEC", hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]


def test_five_minutes_after_the_start_the_unit_robot_mentions_who_has_not_joined(
    app, course, receiver
):
    from webapp.people.services import (
        find_user_by_identifier,
    )
    from webapp.reminders.planning import (
        plan_mentions,
    )
    from webapp.sessions.joining import (
        record_join,
    )

    add_webhook(
        by=course["admin"],
        name="大瓦窑村群",
        kind=WebhookKind.WECOM,
        url=receiver.url,
        secret=None,
        unit=course["village"],
        mentions_absent=True,
    )
    db.session.commit()
    session = course["session"]
    record_join(session, find_user_by_identifier("13910000001"), now=STARTS)
    assert plan_mentions(now=STARTS - timedelta(minutes=1)) == 1
    db.session.commit()
    dispatch_due(worker_id="w", now_fn=lambda: STARTS + timedelta(minutes=4))
    assert receiver.requests == []  # not due before five minutes past the start
    dispatch_due(worker_id="w", now_fn=lambda: STARTS + timedelta(minutes=5))
    [body] = receiver.bodies()
    assert body["msgtype"] == "text"
    assert body["text"]["mentioned_mobile_list"] == ["13910000002", "13910000003"]
    assert "尚未进入课堂" in body["text"]["content"]


def test_no_mention_when_everyone_has_joined(app, course, receiver):
    from webapp.people.services import (
        find_user_by_identifier,
    )
    from webapp.reminders.planning import (
        plan_mentions,
    )
    from webapp.sessions.joining import (
        record_join,
    )

    add_webhook(
        by=course["admin"],
        name="大瓦窑村群",
        kind=WebhookKind.WECOM,
        url=receiver.url,
        secret=None,
        unit=course["village"],
        mentions_absent=True,
    )
    for n in range(1, 4):
        record_join(course["session"], find_user_by_identifier(f"1391000000{n}"), now=STARTS)
    plan_mentions(now=STARTS)
    db.session.commit()
    dispatch_due(worker_id="w", now_fn=lambda: STARTS + timedelta(minutes=5))
    assert receiver.requests == []
    row = db.session.scalars(select(Delivery)).one()
    assert row.status == DeliveryStatus.SKIPPED


def test_watching_in_the_player_counts_as_joined_for_the_mention(app, course, receiver):
    from webapp.people.services import (
        find_user_by_identifier,
    )
    from webapp.reminders.planning import (
        absent_members,
    )
    from webapp.sessions.models import AttendanceKind, AttendanceSource
    from webapp.streaming.broadcasts import add_attendance

    session = course["session"]
    watcher = find_user_by_identifier("13910000002")
    before = {user.phone for user in absent_members(session, course["village"].id)}
    add_attendance(watcher.id, session.id, AttendanceSource.PLAYER, AttendanceKind.JOIN, STARTS)
    db.session.commit()
    after = {user.phone for user in absent_members(session, course["village"].id)}
    assert before - after == {watcher.phone}


def test_join_button_records_the_join_and_opens_the_live_room(app, course, client, monkeypatch):
    from tests.helpers import log_in, post_form
    from webapp.pages import sessions as pages
    from webapp.sessions.models import SessionJoin

    session = course["session"]
    session.join_url = "https://meeting.example.org/room/123"
    db.session.commit()
    log_in(client, "139 1000 0001")
    monkeypatch.setattr(pages, "utcnow", lambda: session.starts_at - timedelta(minutes=5))
    page = f"/sessions/{session.id}"
    response = post_form(client, page, f"{page}/join", {})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://meeting.example.org/room/123"
    assert db.session.scalars(select(SessionJoin)).one().session_id == session.id
