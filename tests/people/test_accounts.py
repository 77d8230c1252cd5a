"""Admins edit accounts (name, mobile, email, unit, title, roles), deactivate and
reactivate them and send log-in links instead of setting passwords; every change is kept
with who made it and when."""

import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.db import db
from webapp.people.models import Role, UnitKind, UserChange
from webapp.people.units import create_unit
from webapp.reminders.models import Delivery, DeliveryKind


@pytest.fixture
def admin(app, make_user):
    app.config.update(SMS_PROVIDER="sink", CHANNEL_ORDER="sms,email")
    user = make_user(Role.ADMIN, email="admin@example.org", name="管理员")
    client = app.test_client()
    log_in(client, "admin@example.org")
    return {"user": user, "client": client}


def form(user, **changes):
    data = {
        "display_name": user.display_name,
        "phone": user.phone or "",
        "email": user.email or "",
        "unit_id": str(user.unit_id or 0),
        "job_title": user.job_title or "",
    }
    data.update(changes)
    return data


def test_an_admin_edits_a_cadre_and_the_change_is_recorded(app, admin, make_user):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    cadre = make_user(phone="13910000001", name="李春梅")
    url = f"/admin/users/{cadre.id}"
    response = post_form(
        admin["client"],
        url,
        url,
        form(
            cadre,
            phone="139 1000 0009",
            email="Li@Example.org",
            unit_id=str(village.id),
            job_title="党支部书记",
            organizer="y",
        ),
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert (cadre.phone, cadre.email, cadre.unit_id, cadre.job_title) == (
        "+8613910000009",
        "li@example.org",
        village.id,
        "党支部书记",
    )
    assert Role.ORGANIZER in cadre.roles
    [change] = db.session.scalars(select(UserChange)).all()
    assert change.changed_by_id == admin["user"].id and change.action == "edited"
    assert change.changes["phone"] == ["+8613910000001", "+8613910000009"]
    assert change.changes["unit"] == [None, "大瓦窑村"]
    page = admin["client"].get(url).get_data(as_text=True)
    assert "+8613910000001 → +8613910000009" in page and "管理员" in page


def test_bad_input_is_explained_and_nothing_is_lost(app, admin, make_user):
    make_user(phone="13910000002", name="王建国")
    cadre = make_user(phone="13910000001", name="李春梅")
    url = f"/admin/users/{cadre.id}"
    for changes, message in (
        ({"phone": "12345"}, "不是有效的手机号码"),
        ({"phone": "13910000002"}, "其他账号已使用该手机号"),
        ({"phone": "", "email": ""}, "账号须有手机号或邮箱"),
    ):
        response = post_form(admin["client"], url, url, form(cadre, **changes))
        assert response.status_code in (400, 409)
        assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert cadre.phone == "+8613910000001"
    assert db.session.scalars(select(UserChange)).all() == []


def test_deactivating_signs_out_everywhere_and_the_last_admin_stays(app, admin, make_user):
    cadre = make_user(phone="13910000001", name="李春梅")
    device = app.test_client()
    log_in(device, "13910000001")
    url = f"/admin/users/{cadre.id}"
    post_form(admin["client"], url, f"{url}/deactivate", {})
    db.session.expire_all()
    assert not cadre.is_active
    assert device.get("/account/notifications").status_code == 302
    log_in(app.test_client(), "13910000001", expect_success=False)
    post_form(admin["client"], url, f"{url}/reactivate", {})
    log_in(app.test_client(), "13910000001")
    own = f"/admin/users/{admin['user'].id}"
    response = post_form(admin["client"], own, f"{own}/deactivate", {}, follow_redirects=True)
    assert "不能停用自己的账号" in response.get_data(as_text=True)
    response = post_form(admin["client"], own, own, form(admin["user"]))  # admin unticked
    assert response.status_code == 400
    assert "最后一位管理员" in response.get_data(as_text=True)
    actions = [c.action for c in db.session.scalars(select(UserChange).order_by(UserChange.id))]
    assert actions == ["deactivated", "reactivated"]


def test_a_log_in_link_instead_of_a_password(app, admin, make_user):
    cadre = make_user(phone="13910000001", name="李春梅", password=None)
    url = f"/admin/users/{cadre.id}"
    post_form(admin["client"], url, f"{url}/login-link/send", {})
    [row] = db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.LOGIN))
    assert (row.user_id, row.channel.value, row.series_id) == (cadre.id, "sms", None)
    page = post_form(admin["client"], url, f"{url}/login-link/show", {}).get_data(as_text=True)
    assert "<svg" in page and "/login/link/" in page
    actions = [c.action for c in db.session.scalars(select(UserChange).order_by(UserChange.id))]
    assert actions == ["link_send", "link_show"]
