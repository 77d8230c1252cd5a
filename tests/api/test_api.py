"""The JSON API: personal tokens, the resources (read and write through the same services as
the pages), cursor pagination, filters, ETags, error objects in the caller's language, and
the OpenAPI document generated from the schemas."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.helpers import log_in, post_form
from webapp.api.tokens import ApiToken, Scope, create_token
from webapp.audit import AuditEntry, Via
from webapp.db import db, utcnow
from webapp.people.models import Role, UnitKind
from webapp.people.units import create_unit
from webapp.reminders.models import Notification
from webapp.sessions.models import SessionChange

DAY = datetime(2026, 12, 10, 0, 0, tzinfo=UTC)


def bearer(secret: str, language: str = "zh-CN") -> dict:
    return {"Authorization": f"Bearer {secret}", "Accept-Language": language}


@pytest.fixture
def organizer(make_user):
    return make_user(Role.ORGANIZER, email="org@example.org", name="组织者")


@pytest.fixture
def token(organizer):
    _token, secret = create_token(
        organizer, name="区委组织部系统", scope=Scope.WRITE, days=30, now=utcnow()
    )
    db.session.commit()
    return secret


def test_a_token_is_made_on_its_page_shown_once_stored_hashed_and_revoked(client, organizer):
    log_in(client, "org@example.org")
    page = post_form(
        client,
        "/account/api-tokens",
        "/account/api-tokens",
        {"name": "数据大屏", "scope": "read", "days": "30"},
    ).text
    secret = page.split('<code class="secret">')[1].split("</code>")[0]
    assert secret.startswith("ykt_") and len(secret) > 40
    assert secret not in client.get("/account/api-tokens").text  # never shown again
    stored = db.session.scalars(select(ApiToken)).one()
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(db.session.execute(select(ApiToken.__table__)).all())
    assert stored.scope == Scope.READ and stored.expires_at - stored.created_at == timedelta(30)

    api = client.application.test_client()  # no cookie: the token alone
    assert api.get("/api/v1/series", headers=bearer(secret)).status_code == 200
    db.session.expire_all()
    assert stored.last_used_at is not None
    assert "从未" not in client.get("/account/api-tokens").text  # the last use is shown
    # Read only: a write is refused, and says why.
    refused = api.post("/api/v1/series", headers=bearer(secret), json={"title": "新系列"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    post_form(client, "/account/api-tokens", f"/account/api-tokens/{stored.id}/revoke", {})
    gone = api.get("/api/v1/series", headers=bearer(secret))
    assert gone.status_code == 401 and gone.json["error"]["code"] == "unauthorized"
    assert gone.headers["WWW-Authenticate"].startswith("Bearer")
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_type == "api_token")
    ).all()
    assert actions == ["api_token.created", "api_token.revoked"]


def test_an_expired_token_or_a_cookie_alone_gets_401(client, organizer):
    _stored, secret = create_token(
        organizer, name="旧", scope=Scope.READ, days=1, now=utcnow() - timedelta(days=2)
    )
    db.session.commit()
    assert client.get("/api/v1/series", headers=bearer(secret)).status_code == 401
    log_in(client, "org@example.org")  # a signed-in browser does not open the API
    assert client.get("/api/v1/series").status_code == 401
    assert (
        client.get("/api/v1/series", headers={"Authorization": "Bearer nonsense"})
        .json["error"]["message"]
        .startswith("请提供有效的 API 令牌")
    )


def test_participants_cannot_have_tokens(client, make_user):
    make_user(email="cadre@example.org")
    log_in(client, "cadre@example.org")
    assert client.get("/account/api-tokens").status_code == 403


def test_a_series_is_built_through_the_api_as_on_the_pages(client, organizer, token, make_user):
    headers = bearer(token)
    series = client.post(
        "/api/v1/series",
        headers=headers,
        json={"title": " 卢沟桥乡\x00研修班 ", "timezone": "Asia/Shanghai", "capacity": 100},
    )
    assert series.status_code == 201
    assert series.json["title"] == "卢沟桥乡研修班" and series.json["status"] == "draft"
    assert series.json["attendance_share"] == 80  # the admin's default
    series_id = series.json["id"]
    speaker = client.post(
        "/api/v1/speakers", headers=headers, json={"name": "张教授", "affiliation": "人民大学"}
    ).json
    session = client.post(
        f"/api/v1/series/{series_id}/sessions",
        headers=headers,
        json={"title": "第一讲", "starts_at": "2026-12-10T16:00:00+08:00",
              "ends_at": "2026-12-10T18:00:00+08:00"},
    )  # fmt: skip
    assert session.status_code == 201, session.json
    assert session.json["starts_at"] == "2026-12-10T08:00:00+00:00"
    session_id = session.json["id"]
    lecture = client.post(
        f"/api/v1/sessions/{session_id}/lectures",
        headers=headers,
        json={"title": "乡村治理", "speaker_ids": [speaker["id"]]},
    )
    assert lecture.status_code == 201 and lecture.json["speaker_ids"] == [speaker["id"]]
    cadre = make_user(name="王建国", phone="13910000001")
    enrolled = client.post(
        f"/api/v1/series/{series_id}/enrollments", headers=headers, json={"user_id": cadre.id}
    )
    assert enrolled.status_code == 201 and enrolled.json["status"] == "enrolled"
    assert enrolled.json["participant"]["display_name"] == "王建国"

    # Publish on the page, then move the session through the API: participants are told,
    # as when it is moved on its page, and the change is in the session's history.
    log_in(client, "org@example.org")
    post_form(client, f"/series/{series_id}/manage", f"/series/{series_id}/publish", {})
    moved = client.patch(
        f"/api/v1/sessions/{session_id}",
        headers=headers,
        json={"starts_at": "2026-12-10T19:00:00+08:00", "ends_at": "2026-12-10T21:00:00+08:00",
              "reason": "讲师航班改期"},
    )  # fmt: skip
    assert moved.status_code == 200 and moved.json["sequence"] == 1
    change = db.session.scalars(select(SessionChange)).one()
    assert change.reason == "讲师航班改期" and change.changed_by_id == organizer.id
    assert db.session.scalars(select(Notification)).all()  # a change notice is on its way
    audit = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "session.rescheduled")
    ).one()
    assert audit.via == Via.API and audit.actor_id == organizer.id
    cancelled = client.post(
        f"/api/v1/sessions/{session_id}/cancel", headers=headers, json={"reason": "场地检修"}
    )
    assert cancelled.json["status"] == "cancelled"
    again = client.post(
        f"/api/v1/sessions/{session_id}/cancel", headers=headers, json={"reason": "再取消"}
    )
    assert again.status_code == 409
    assert again.json["error"] == {"code": "conflict", "message": "此课次已取消。"}
    report = client.get(f"/api/v1/sessions/{session_id}/attendance", headers=headers).json
    assert [row["name"] for row in report["items"]] == ["王建国"]


def test_lists_page_by_cursor_and_filter_by_time_and_unit(
    client, organizer, token, make_series, make_user
):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    member = make_user(name="村干部", unit=village)
    in_unit = make_series(organizers=[organizer], participants=[member], sessions=3,
                          first_start=DAY)  # fmt: skip
    make_series(organizers=[organizer], sessions=4, first_start=DAY + timedelta(days=20))
    make_series(sessions=2)  # someone else's: never listed
    headers = bearer(token)
    seen, cursor = [], None
    while True:
        url = "/api/v1/sessions?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).json
        assert "items" in body, body
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7  # each once, across three pages
    early = client.get(
        "/api/v1/sessions?starts_before=2026-12-20T00:00:00%2B08:00", headers=headers
    ).json
    assert [item["series_id"] for item in early["items"]] == [in_unit.id] * 3
    by_unit = client.get(f"/api/v1/sessions?unit_id={village.id}", headers=headers).json
    assert "items" in by_unit, by_unit
    assert {item["series_id"] for item in by_unit["items"]} == {in_unit.id}
    people = client.get(f"/api/v1/participants?unit_id={village.id}", headers=headers).json
    assert [person["display_name"] for person in people["items"]] == ["村干部"]
    bad = client.get("/api/v1/sessions?cursor=not-ours", headers=headers)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "cursor"


def test_a_get_answers_304_to_its_etag_until_the_object_changes(
    client, organizer, token, make_series
):
    series = make_series(organizers=[organizer])
    headers = bearer(token)
    first = client.get(f"/api/v1/series/{series.id}", headers=headers)
    etag = first.headers["ETag"]
    again = client.get(f"/api/v1/series/{series.id}", headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    client.patch(f"/api/v1/series/{series.id}", headers=headers, json={"title": "新名称"})
    changed = client.get(f"/api/v1/series/{series.id}", headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.json["title"] == "新名称"


def test_errors_are_one_object_with_a_code_and_a_message_in_the_caller_s_language(
    client, organizer, token, make_series
):
    theirs = make_series()
    invalid = {"title": "", "capacity": 0, "colour": "red", "timezone": "Mars/Base"}
    zh = client.post("/api/v1/series", headers=bearer(token), json=invalid)
    en = client.post("/api/v1/series", headers=bearer(token, "en-US"), json=invalid)
    assert zh.status_code == en.status_code == 422
    assert zh.json["error"]["code"] == en.json["error"]["code"] == "invalid"
    assert zh.json["error"]["message"].startswith("以下字段有误")
    assert en.json["error"]["message"].startswith("Some fields are not valid")
    assert set(zh.json["error"]["details"]) == {"title", "capacity", "colour", "timezone"}
    assert zh.json["error"]["details"]["colour"] == ["没有这个字段。"]
    not_yours = client.get(f"/api/v1/series/{theirs.id}", headers=bearer(token, "en-US"))
    assert not_yours.status_code == 404
    assert (
        not_yours.json["error"]["message"] == "There is no such object, or it is not yours to see."
    )
    no_route = client.get("/api/v1/nothing-here", headers=bearer(token))
    assert no_route.status_code == 404 and no_route.json["error"]["code"] == "not_found"
    not_json = client.post("/api/v1/series", headers=bearer(token), data="title=x")
    assert not_json.status_code in (400, 415, 422) and "error" in not_json.json


def test_the_openapi_document_is_3_1_and_made_from_the_schemas(client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    series = document["components"]["schemas"]["Series"]
    assert series["properties"]["title"]["maxLength"] == 200  # the validator's own bound
    assert series["additionalProperties"] is False
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    rules = {
        rule.rule.replace("<int:", "{").replace(">", "}")
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint.startswith("api_")
    }
    assert rules == set(document["paths"])  # every API route is in the document


def test_agenda_participants_and_publishing_are_written_through_the_api(
    client, organizer, token, make_user, make_series
):
    from webapp.series.models import SeriesStatus

    headers = bearer(token)
    series = make_series(organizers=[organizer], status=SeriesStatus.DRAFT, sessions=1)
    session = series.sessions[0]
    speaker = client.post("/api/v1/speakers", headers=headers, json={"name": "李教授"}).json
    lecture = client.post(
        f"/api/v1/sessions/{session.id}/lectures", headers=headers, json={"title": "开班讲话"}
    ).json
    changed = client.patch(
        f"/api/v1/lectures/{lecture['id']}",
        headers=headers,
        json={"title": "开班动员", "speaker_ids": [speaker["id"]]},
    )
    assert changed.status_code == 200
    assert (changed.json["title"], changed.json["speaker_ids"]) == ("开班动员", [speaker["id"]])
    titles = [item["title"] for item in client.get(
        f"/api/v1/sessions/{session.id}/lectures", headers=headers).json["items"]]  # fmt: skip
    assert "开班动员" in titles
    assert client.delete(f"/api/v1/lectures/{lecture['id']}", headers=headers).status_code == 204
    published = client.post(f"/api/v1/series/{series.id}/publish", headers=headers)
    assert published.status_code == 200 and published.json["status"] == "published"
    again = client.post(f"/api/v1/series/{series.id}/publish", headers=headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"
    archived = client.post(f"/api/v1/series/{series.id}/archive", headers=headers)
    assert archived.json["status"] == "archived"

    cadre = make_user(name="王建国", phone="13910000001")
    # Accounts are an admin's: an organizer's token may not change one.
    refused = client.patch(
        f"/api/v1/participants/{cadre.id}", headers=headers, json={"job_title": "村支书"}
    )
    assert refused.status_code == 403
    admin = make_user(Role.ADMIN, email="admin@example.org")
    admin_secret = create_token(admin, name="a", scope=Scope.WRITE, days=1, now=utcnow())[1]
    db.session.commit()
    edited = client.patch(
        f"/api/v1/participants/{cadre.id}",
        headers=bearer(admin_secret),
        json={"job_title": "村支书", "phone": "139 1000 0009"},
    )
    assert edited.status_code == 200, edited.json
    assert (edited.json["job_title"], edited.json["phone"]) == ("村支书", "+8613910000009")
    taken = client.patch(
        f"/api/v1/participants/{cadre.id}",
        headers=bearer(admin_secret),
        json={"email": "org@example.org"},
    )
    assert taken.status_code == 409  # another account has that address: nothing changes
