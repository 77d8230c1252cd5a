import pytest

from tests.helpers import NOW, PASSWORD
from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
)
from webapp.people.identifiers import (
    normalise_phone,
)
from webapp.people.logins import (
    begin_login_session,
    end_login_session,
    load_user_for_session,
)
from webapp.people.models import Role
from webapp.people.services import (
    authenticate,
    create_user,
    find_user_by_identifier,
    revoke_role,
    set_password,
)


def test_email_is_normalised_and_unique(make_user):
    user = make_user(email="  Li.Wen@Example.ORG ")
    assert user.email == "li.wen@example.org"
    with pytest.raises(Conflict, match="li.wen@example.org"):
        create_user(display_name="重复", email="LI.WEN@example.org")


@pytest.mark.parametrize(
    "typed", ["13910000001", "139 1000 0001", "+86 139-1000-0001", "+8613910000001"]
)
def test_mobile_numbers_are_stored_in_e164(typed):
    assert normalise_phone(typed) == "+8613910000001"


@pytest.mark.parametrize("bad", ["12345", "abc", "1391000000199"])
def test_invalid_mobile_numbers_get_a_clear_message(app, bad):
    with pytest.raises(InvalidInput, match="不是有效的手机号码"):
        normalise_phone(bad)


def test_an_account_needs_an_email_or_a_mobile_number(app):
    with pytest.raises(InvalidInput, match="请填写电子邮箱或手机号"):
        create_user(display_name="无联系方式")


def test_short_passwords_are_refused(app):
    with pytest.raises(InvalidInput, match="至少需要 8 个字符"):
        create_user(display_name="短密码", email="short@example.org", password="1234567")


def test_users_log_in_with_email_or_mobile_number(make_user):
    user = make_user(email="cadre@example.org", phone="13910000009")
    assert authenticate("cadre@example.org", PASSWORD, now=NOW) == user
    assert authenticate("CADRE@example.org ", PASSWORD, now=NOW) == user
    assert authenticate("139 1000 0009", PASSWORD, now=NOW) == user
    assert user.last_login_at == NOW


def test_a_wrong_password_or_unknown_account_does_not_authenticate(make_user):
    make_user(email="cadre@example.org")
    assert authenticate("cadre@example.org", "wrong password", now=NOW) is None
    assert authenticate("nobody@example.org", PASSWORD, now=NOW) is None
    assert authenticate("", PASSWORD, now=NOW) is None


def test_an_inactive_account_cannot_log_in(make_user):
    user = make_user(email="gone@example.org")
    user.is_active = False
    db.session.commit()
    assert authenticate("gone@example.org", PASSWORD, now=NOW) is None


def test_passwords_are_stored_hashed_with_argon2(make_user):
    user = make_user()
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")


def test_changing_the_password_ends_other_sessions(make_user):
    user = make_user()
    user.login_session_token = begin_login_session(user, now=NOW)
    old_session_id = user.get_id()
    assert load_user_for_session(old_session_id) == user
    set_password(user, "a brand new password", now=NOW)
    user.login_session_token = begin_login_session(user, now=NOW)
    db.session.commit()
    assert load_user_for_session(old_session_id) is None
    assert load_user_for_session(user.get_id()) == user
    assert authenticate(user.email, "a brand new password", now=NOW) == user


def test_an_ended_login_session_loads_nobody(make_user):
    user = make_user()
    token = begin_login_session(user, now=NOW)
    user.login_session_token = token
    session_id = user.get_id()
    assert load_user_for_session(session_id) == user
    end_login_session(token, now=NOW)
    assert load_user_for_session(session_id) is None
    assert load_user_for_session(f"{user.id}.{user.login_epoch}") is None  # no device token


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x",
        "1",
        "1.x",
        "abc.1",
        "999999.0",
        "1.0.nope",
        "99999999999999999999.0.x",
        "2147483648.0.x",
    ],
)
def test_garbage_session_ids_load_nobody(app, bad):
    assert load_user_for_session(bad) is None


def test_the_last_admin_keeps_the_admin_role(make_user):
    admin = make_user(Role.ADMIN)
    with pytest.raises(Conflict, match="最后一位管理员"):
        revoke_role(admin, Role.ADMIN)
    second = make_user(Role.ADMIN)
    revoke_role(admin, Role.ADMIN)
    assert Role.ADMIN not in admin.roles
    assert find_user_by_identifier(second.email).is_admin
