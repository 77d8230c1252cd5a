"""Organizers hand out fresh log-in links at any time: one person (sent, or shown with a
QR code), a unit, or everyone who never signed in; through each person's channel or as a
sheet. A new link ends the older ones."""

import io
import re
from datetime import timedelta

import openpyxl
import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.db import db
from webapp.people.models import LoginToken, Role, UnitKind
from webapp.people.units import create_unit
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.models import Channel, Delivery, DeliveryKind, DeliveryStatus
from webapp.series.models import Enrollment


@pytest.fixture
def course(app, make_user, make_series, tmp_path):
    app.config.update(SMS_PROVIDER="sink", CHANNEL_ORDER="sms,email", MAIL_URL=f"file://{tmp_path}")
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    other = create_unit("小瓦窑村", UnitKind.VILLAGE)
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    people = {
        "li": make_user(phone="13910000001", name="李春梅", unit=village, password=None),
        "wang": make_user(email="wang@example.org", name="王建国", unit=other, password=None),
        "zhao": make_user(phone="13910000003", name="赵已登录", unit=village),
    }
    people["zhao"].last_login_at = make_series.__self__.now
    series = make_series(organizers=[organizer], participants=list(people.values()))
    client = app.test_client()
    log_in(client, "organizer@example.org")
    return {"series": series, "client": client, "village": village, "folder": tmp_path, **people}


def links_url(course):
    return f"/series/{course['series'].id}/login-links"


def participants_url(course):
    return f"/series/{course['series'].id}/participants"


def test_everyone_who_never_signed_in_gets_a_link_through_their_channel(app, course):
    client = course["client"]
    response = post_form(
        client,
        participants_url(course),
        links_url(course),
        {"links-scope": "never", "links-unit_id": "0", "links-how": "send"},
        follow_redirects=True,
    )
    assert "新的登录链接正在发送给 2 位学员" in response.get_data(as_text=True)
    rows = db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.LOGIN)).all()
    assert {(row.user_id, row.channel) for row in rows} == {
        (course["li"].id, Channel.SMS),
        (course["wang"].id, Channel.EMAIL),
    }
    dispatch_due(worker_id="w1", now_fn=lambda: rows[0].due_at + timedelta(seconds=1))
    db.session.expire_all()
    assert {row.status for row in rows} == {DeliveryStatus.SENT}
    # The SMS in the sink carries the link; the link signs her in.
    [sms] = [p for p in course["folder"].glob("*-sms-*.json")]
    link = re.search(r"http://localhost(/login/link/[\w-]+)", sms.read_text()).group(1)
    response = app.test_client().get(link)
    assert response.headers["Location"] == "/account/password"
    # The outbox never held the link.
    assert all("login/link" not in str(row.payload) for row in rows)


def test_a_unit_as_a_sheet_with_unit_title_and_text_mobile_numbers(app, course):
    client = course["client"]
    old = post_form(
        client,
        participants_url(course),
        links_url(course),
        {"links-scope": "unit", "links-unit_id": str(course["village"].id), "links-how": "sheet"},
    )
    response = post_form(
        client,
        participants_url(course),
        links_url(course),
        {"links-scope": "unit", "links-unit_id": str(course["village"].id), "links-how": "sheet"},
    )
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows(min_row=2)]
    assert sorted(row[0] for row in rows) == ["李春梅", "赵已登录"]
    assert {row[1] for row in rows} == {"大瓦窑村"}
    assert {row[3] for row in rows} == {"13910000001", "13910000003"}  # text, no apostrophe
    # A new link ends the older ones: the first sheet's links no longer work.
    first = openpyxl.load_workbook(io.BytesIO(old.data)).active
    stale = first["F2"].value.replace("http://localhost", "")
    assert app.test_client().get(stale).headers["Location"] == "/login"
    fresh = sheet["F2"].value.replace("http://localhost", "")
    assert app.test_client().get(fresh).headers["Location"] == "/account/password"


def test_one_person_shown_with_a_qr_code_or_told_they_cannot_be_reached(app, course):
    client = course["client"]
    enrollment = db.session.scalar(select(Enrollment).where(Enrollment.user_id == course["li"].id))
    url = f"/series/{course['series'].id}/participants/{enrollment.id}/login-link/show"
    page = post_form(client, participants_url(course), url, {}).get_data(as_text=True)
    assert "<svg" in page and "/login/link/" in page
    assert db.session.scalars(select(LoginToken)).one().user_id == course["li"].id
    app.config["CHANNEL_ORDER"] = "email"  # SMS off: she has no email address
    url = url.replace("/show", "/send")
    response = post_form(client, participants_url(course), url, {}, follow_redirects=True)
    assert "李春梅" in response.get_data(as_text=True)
    assert db.session.scalars(select(Delivery)).all() == []
