"""Sign-in by SMS code (验证码登录) and "forgot password", by a code or an emailed link,
through the pages, with the code sent to a local Aliyun-style SMS server."""

import json
import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from tests.platforms import AliyunSms
from webapp.db import db
from webapp.people.models import LoginCode
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.models import Delivery, DeliveryKind
from webapp.reminders.texts import save_template


@pytest.fixture
def sms(app):
    server = AliyunSms()
    server.templates["SMS_200001"] = ("code",)
    app.config.update(
        SMS_PROVIDER="aliyun",
        CHANNEL_ORDER="sms,email",
        ALIYUN_SMS_ENDPOINT=server.url,
        ALIYUN_ACCESS_KEY_ID=server.key_id,
        ALIYUN_ACCESS_KEY_SECRET=server.secret,
    )
    with app.app_context():
        for language in ("zh_CN", "en"):
            save_template("login_code", language, "SMS_200001", 6)
        db.session.commit()
    yield server
    server.close()


def ask(client, phone="13910000001"):
    return post_form(client, "/login/code", "/login/code", {"phone": phone})


def enter(client, code):
    return post_form(client, "/login/code/enter", "/login/code/enter", {"code": code})


def last_code(server, phone="13910000001"):
    return [m for m in server.received if m["to"] == phone][-1]["params"]["code"]


def test_a_cadre_with_only_a_mobile_number_signs_in_with_a_code(app, sms, make_user):
    user = make_user(phone="13910000001", name="李春梅", password=None)
    client = app.test_client()
    assert "/login/code" in client.get("/login").get_data(as_text=True)
    response = ask(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login/code/enter"
    code = last_code(sms)
    assert len(code) == 6 and code.isdigit()
    assert sms.received[-1]["template"] == "SMS_200001"
    assert enter(client, code).status_code == 302
    assert client.get("/account/notifications").status_code == 200
    db.session.expire_all()
    assert user.last_login_at is not None
    # A code works once.
    other = app.test_client()
    with other.session_transaction() as session:
        session["code_phone"] = "+8613910000001"
    assert enter(other, code).status_code == 401
    # Stored as an HMAC, never as the code.
    assert all(row.code_hash != code for row in db.session.scalars(select(LoginCode)))


def test_five_wrong_tries_end_a_code_and_it_expires_after_five_minutes(app, sms, make_user):
    make_user(phone="13910000001", password=None)
    client = app.test_client()
    ask(client)
    code = last_code(sms)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = enter(client, wrong)
        assert response.status_code == 401
        assert "验证码不正确或已过期" in response.get_data(as_text=True)
    assert enter(client, code).status_code == 401  # worn out
    # A fresh code (a minute later), expired by the clock.
    for row in db.session.scalars(select(LoginCode)):
        row.created_at -= timedelta(minutes=2)
    db.session.commit()
    ask(client)
    code = last_code(sms)
    for row in db.session.scalars(select(LoginCode)):
        row.expires_at -= timedelta(minutes=6)
    db.session.commit()
    assert enter(client, code).status_code == 401


def test_the_same_answer_whether_or_not_the_number_has_an_account(app, sms, make_user):
    make_user(phone="13910000001", password=None)
    known, unknown = app.test_client(), app.test_client()
    first, second = ask(known, "13910000001"), ask(unknown, "13910000009")
    assert (first.status_code, first.headers["Location"]) == (
        second.status_code,
        second.headers["Location"],
    )

    def page(client, phone):
        text = client.get("/login/code/enter").get_data(as_text=True)
        return re.sub(r'value="[^"]*"', "", text).replace(phone, "X")

    assert page(known, "+8613910000001") == page(unknown, "+8613910000009")
    assert [m["to"] for m in sms.received] == ["13910000001"]  # nothing to the unknown one
    # The limit applies to both alike: one code a minute per number.
    for client, phone in ((known, "13910000001"), (unknown, "13910000009")):
        response = ask(client, phone)
        assert response.status_code == 429
        assert "请求验证码过于频繁" in response.get_data(as_text=True)


def test_one_client_address_may_ask_twenty_codes_an_hour(app, sms):
    client = app.test_client()
    for n in range(20):
        assert ask(client, f"139100001{n:02d}").status_code == 302
    assert ask(client, "13910000199").status_code == 429


def test_an_sms_provider_failure_is_said_and_the_password_still_works(app, sms, make_user):
    make_user(phone="13910000001")
    app.config["ALIYUN_ACCESS_KEY_SECRET"] = "wrong"
    client = app.test_client()
    response = ask(client)
    assert response.status_code == 429
    assert "验证码暂时无法发送" in response.get_data(as_text=True)
    log_in(client, "13910000001")


def test_forgot_password_by_sms_code(app, sms, make_user):
    user = make_user(phone="13910000001")
    old_device = app.test_client()
    log_in(old_device, "13910000001")
    client = app.test_client()
    response = post_form(
        client, "/password/forgot", "/password/forgot", {"identifier": "139 1000 0001"}
    )
    assert response.headers["Location"] == "/password/reset"
    code = last_code(sms)
    response = post_form(
        client,
        "/password/reset",
        "/password/reset",
        {"code": code, "password": "new secret 2026", "confirm": "new secret 2026"},
    )
    assert response.status_code == 302
    assert client.get("/account/notifications").status_code == 200
    # The new password works, the device logged in before is logged out.
    assert old_device.get("/account/notifications").status_code == 302
    log_in(app.test_client(), "13910000001", "new secret 2026")
    db.session.expire_all()
    assert user.password_hash is not None


def test_forgot_password_by_email_sends_a_link_through_the_worker(app, sms, make_user, tmp_path):
    app.config["MAIL_URL"] = f"file://{tmp_path}"
    make_user(phone="13910000001", email="wang@example.org", name="王建国")
    client = app.test_client()
    response = post_form(
        client, "/password/forgot", "/password/forgot", {"identifier": "Wang@Example.org"}
    )
    assert response.status_code == 302
    unknown = post_form(
        app.test_client(), "/password/forgot", "/password/forgot", {"identifier": "no@example.org"}
    )
    assert unknown.status_code == 302
    [row] = db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.LOGIN)).all()
    assert row.payload == {"only": "email"}  # to the address typed, not by SMS
    dispatch_due(worker_id="w1", now_fn=lambda: row.due_at + timedelta(seconds=1))
    [mail] = list(tmp_path.glob("*.eml"))
    message = BytesParser(policy=policy.default).parsebytes(mail.read_bytes())
    assert message["To"].addresses[0].addr_spec == "wang@example.org"
    body = message.get_body(preferencelist=("plain",)).get_content()
    link = next(word for word in body.split() if "/login/link/" in word)
    assert sms.received == []
    response = app.test_client().get(link.replace("http://localhost", ""))
    assert response.status_code == 302 and response.headers["Location"] == "/account/password"


def test_with_the_demos_sink_the_code_is_read_at_admin_mail(app, make_user, tmp_path):
    app.config.update(SMS_PROVIDER="sink", CHANNEL_ORDER="sms,email", MAIL_URL=f"file://{tmp_path}")
    make_user(phone="13910000001", password=None)
    client = app.test_client()
    ask(client)
    [record] = list(tmp_path.glob("*-sms-*.json"))
    sent = json.loads(record.read_text())
    code = sent["params"]["code"]
    assert code in sent["text"] and sent["to"] == "+8613910000001"
    assert enter(client, code).status_code == 302
