from tests.helpers import PASSWORD, log_in, post_form
from webapp.people.models import Role


def test_login_page_is_in_chinese_by_default(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert "电子邮箱或手机号" in page and "登录" in page


def test_logging_in_with_the_right_password_opens_the_home_page(client, make_user):
    make_user(email="cadre@example.org", name="王建国")
    response = log_in(client, "cadre@example.org")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "欢迎，王建国" in client.get("/").get_data(as_text=True)


def test_logging_in_with_a_mobile_number(client, make_user):
    make_user(phone="13910000001", name="李春梅")
    assert log_in(client, "139 1000 0001").status_code == 302
    assert "欢迎，李春梅" in client.get("/").get_data(as_text=True)


def test_a_wrong_password_does_not_log_in(client, make_user):
    make_user(email="cadre@example.org")
    response = log_in(client, "cadre@example.org", "not the password", expect_success=False)
    assert response.status_code == 401
    assert "邮箱/手机号或密码错误" in response.get_data(as_text=True)
    home = client.get("/")
    assert home.status_code == 302
    assert home.headers["Location"].startswith("/login")


def test_empty_fields_get_clear_messages(client):
    response = log_in(client, "", "", expect_success=False)
    page = response.get_data(as_text=True)
    assert "请输入电子邮箱或手机号" in page and "请输入密码" in page


def test_login_without_csrf_token_is_refused(client, make_user):
    make_user(email="cadre@example.org")
    response = client.post(
        "/login", data={"identifier": "cadre@example.org", "password": "correct horse battery"}
    )
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_login_returns_to_the_page_asked_for_but_never_off_site(client, make_user):
    make_user(email="cadre@example.org")
    response = log_in(client, "cadre@example.org", next="/series/1")
    assert response.headers["Location"] == "/series/1"
    client.post("/logout")  # no token: ignored
    other = client.application.test_client()
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = log_in(other, "cadre@example.org", next=evil)
        assert response.headers["Location"] == "/"
        post_form(other, "/", "/logout", {})


def test_logout_needs_post_with_csrf(client, make_user):
    make_user(email="cadre@example.org")
    log_in(client, "cadre@example.org")
    assert client.get("/logout").status_code == 405
    client.post("/logout")  # without a token nothing happens
    assert client.get("/").status_code == 200
    post_form(client, "/", "/logout", {})
    assert client.get("/").status_code == 302


def test_password_change_logs_out_other_sessions(app, make_user):
    make_user(email="cadre@example.org")
    phone, laptop = app.test_client(), app.test_client()
    log_in(phone, "cadre@example.org")
    log_in(laptop, "cadre@example.org")
    assert phone.get("/").status_code == laptop.get("/").status_code == 200
    # Changed on the laptop, through the form: the phone is logged out, the laptop stays in.
    response = post_form(
        laptop,
        "/account/password",
        "/account/password",
        {
            "current_password": PASSWORD,
            "password": "another long password",
            "confirm": "another long password",
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert laptop.get("/").status_code == 200
    response = phone.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert log_in(phone, "cadre@example.org", "another long password").status_code == 302


def test_session_cookie_is_hardened(client, make_user):
    make_user(email="cadre@example.org")
    response = log_in(client, "cadre@example.org", remember="y")
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("ykt_session="))
    remember_cookie = next(c for c in cookies if c.startswith("remember_token="))
    for cookie in (session_cookie, remember_cookie):
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie


def test_json_clients_get_401_not_a_redirect(client):
    response = client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json["status"] == 401


def test_json_clients_get_403(client, make_user):
    make_user(Role.PARTICIPANT, email="cadre@example.org")
    log_in(client, "cadre@example.org")
    response = client.get("/admin/", headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.json["error"] == "您没有权限访问此页面。"
