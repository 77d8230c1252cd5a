from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.db import db
from webapp.people.models import Role, Speaker


def test_organizer_adds_and_edits_a_speaker_linked_to_an_account(app, make_user):
    make_user(Role.ORGANIZER, email="organizer@example.org")
    professor = make_user(email="liu@example.org", name="刘金龙")
    client = app.test_client()
    log_in(client, "organizer@example.org")
    response = post_form(
        client,
        "/speakers/new",
        "/speakers/new",
        {
            "name": "刘金龙",
            "title": "教授",
            "affiliation": "中国人民大学",
            "user_identifier": "liu@example.org",
        },
    )
    assert response.status_code == 302
    speaker = db.session.scalars(select(Speaker)).one()
    assert speaker.user_id == professor.id
    url = f"/speakers/{speaker.id}/edit"
    response = post_form(
        client,
        url,
        url,
        {
            "name": "刘金龙",
            "title": "教授",
            "affiliation": "中国人民大学农业与农村发展学院",
            "user_identifier": "nobody@example.org",
        },
    )
    assert "没有使用该电子邮箱或手机号的账号" in response.get_data(as_text=True)
    response = post_form(
        client,
        url,
        url,
        {
            "name": "刘金龙",
            "title": "教授",
            "affiliation": "中国人民大学农业与农村发展学院",
            "user_identifier": "",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert speaker.affiliation == "中国人民大学农业与农村发展学院" and speaker.user_id is None
    assert "刘金龙" in client.get("/speakers").get_data(as_text=True)


def test_speaker_form_refuses_an_empty_name(app, make_user):
    make_user(Role.ORGANIZER, email="organizer@example.org")
    client = app.test_client()
    log_in(client, "organizer@example.org")
    response = post_form(client, "/speakers/new", "/speakers/new", {"name": "  "})
    assert "请填写名称" in response.get_data(as_text=True)
    assert db.session.scalars(select(Speaker)).all() == []


def test_speaker_form_never_redirects_off_site(app, make_user):
    make_user(Role.ORGANIZER, email="organizer@example.org")
    client = app.test_client()
    log_in(client, "organizer@example.org")
    response = post_form(
        client, "/speakers/new", "/speakers/new?back=https://evil.example/", {"name": "李文钊"}
    )
    assert response.headers["Location"] == "/speakers"
