"""The organizer workflow through the browser's HTTP requests, and who may use each page."""

import io
import re

import openpyxl
import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import stream_encode_multipart

from tests.helpers import csrf_token_from, log_in, post_form
from webapp.db import db
from webapp.people.models import Role
from webapp.series.models import Enrollment, ImportBatch, Series, SeriesStatus
from webapp.sessions.models import Lecture, LectureSession, SessionStatus


@pytest.fixture
def organizer_client(app, make_user):
    make_user(Role.ORGANIZER, email="organizer@example.org", name="组织者")
    client = app.test_client()
    log_in(client, "organizer@example.org")
    return client


def create_series_via_form(client, title="卢沟桥乡研修班", timezone="Asia/Shanghai"):
    response = post_form(
        client,
        "/series/new",
        "/series/new",
        {"title": title, "description": "线上研修", "timezone": timezone, "visibility": "enrolled"},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return db.session.scalars(select(Series).where(Series.title == title)).one()


def add_three_daily_sessions(client, series):
    return post_form(
        client,
        f"/series/{series.id}/sessions/new",
        f"/series/{series.id}/sessions/new",
        {
            "mode": "repeat",
            "repeat-count": "3",
            "repeat-frequency": "daily",
            "repeat-first_day": "2026-12-03",
            "repeat-start": "16:00",
            "repeat-end": "18:00",
            "repeat-title_template": "第{n}天",
            "repeat-location": "",
        },
    )


def test_organizer_creates_a_series_with_three_sessions_and_publishes(organizer_client):
    series = create_series_via_form(organizer_client)
    assert series.status == SeriesStatus.DRAFT
    response = add_three_daily_sessions(organizer_client, series)
    assert response.status_code == 302
    db.session.expire_all()
    assert [s.title for s in series.sessions] == ["第1天", "第2天", "第3天"]
    assert series.sessions[0].starts_at.isoformat() == "2026-12-03T08:00:00+00:00"
    manage = organizer_client.get(f"/series/{series.id}/manage").get_data(as_text=True)
    assert "2026年12月3日星期四 16:00–18:00" in manage and "未发布" in manage
    post_form(organizer_client, f"/series/{series.id}/manage", f"/series/{series.id}/publish", {})
    db.session.expire_all()
    assert series.status == SeriesStatus.PUBLISHED


def test_form_errors_are_shown_in_chinese_and_nothing_is_written(organizer_client):
    response = post_form(
        organizer_client,
        "/series/new",
        "/series/new",
        {"title": "", "timezone": "Asia/Shanghai", "visibility": "enrolled"},
    )
    assert "请填写标题" in response.get_data(as_text=True)
    series = create_series_via_form(organizer_client)
    response = post_form(
        organizer_client,
        f"/series/{series.id}/sessions/new",
        f"/series/{series.id}/sessions/new",
        {"mode": "one", "one-day": "2026-12-03", "one-start": "18:00", "one-end": "16:00"},
    )
    assert response.status_code == 400
    assert "结束时间必须晚于开始时间" in response.get_data(as_text=True)
    response = post_form(
        organizer_client,
        f"/series/{series.id}/sessions/new",
        f"/series/{series.id}/sessions/new",
        {"mode": "one", "one-day": "99999-01-01", "one-start": "16:00", "one-end": "18:00"},
    )
    assert response.status_code == 400
    assert db.session.scalars(select(LectureSession)).all() == []


def test_lecture_outside_its_session_is_explained_in_the_form(organizer_client):
    series = create_series_via_form(organizer_client)
    add_three_daily_sessions(organizer_client, series)
    session = db.session.scalars(select(LectureSession)).first()
    response = post_form(
        organizer_client,
        f"/sessions/{session.id}/agenda",
        f"/sessions/{session.id}/agenda",
        {"title": "社区治理", "start": "15:00", "end": "17:00"},
    )
    assert "讲座时间必须在所属课次的时间之内" in response.get_data(as_text=True)
    response = post_form(
        organizer_client,
        f"/sessions/{session.id}/agenda",
        f"/sessions/{session.id}/agenda",
        {"title": "社区治理", "start": "16:00", "end": "17:00"},
    )
    assert response.status_code == 302
    assert db.session.scalars(select(Lecture)).one().title == "社区治理"


def test_reschedule_and_cancel_through_the_pages(organizer_client, make_user):
    series = create_series_via_form(organizer_client)
    add_three_daily_sessions(organizer_client, series)
    post_form(organizer_client, f"/series/{series.id}/manage", f"/series/{series.id}/publish", {})
    session = db.session.scalars(select(LectureSession).order_by(LectureSession.id)).first()
    url = f"/sessions/{session.id}/reschedule"
    # Onto day 2 is refused: sessions of one series may not overlap.
    response = post_form(
        organizer_client, url, url, {"day": "2026-12-04", "start": "17:00", "end": "19:00"}
    )
    assert "与本系列的另一课次时间重叠" in response.get_data(as_text=True)
    response = post_form(
        organizer_client,
        url,
        url,
        {"day": "2026-12-03", "start": "09:00", "end": "11:00", "reason": "专家行程调整"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert session.sequence == 1
    manage = organizer_client.get(f"/series/{series.id}/manage").get_data(as_text=True)
    assert "专家行程调整" in manage
    url = f"/sessions/{session.id}/cancel"
    assert post_form(organizer_client, url, url, {"reason": ""}).status_code == 200
    response = post_form(organizer_client, url, url, {"reason": "疫情防控需要"})
    assert response.status_code == 302
    db.session.expire_all()
    assert session.status == SessionStatus.CANCELLED


def sheet(rows) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.append(["姓名", "手机号", "邮箱", "单位", "角色"])
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def upload(client, series, data: bytes, filename="名单.xlsx"):
    url = f"/series/{series.id}/import"
    token = csrf_token_from(client.get(url).get_data(as_text=True))
    return client.post(
        url,
        data={"csrf_token": token, "sheet": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def test_import_preview_then_confirm_then_download_links(organizer_client):
    series = create_series_via_form(organizer_client)
    response = upload(
        organizer_client,
        series,
        sheet(
            [
                ["王建国", "13910000001", "", "大瓦窑村", ""],
                ["坏号码", "123", "", "", ""],
            ]
        ),
    )
    assert response.status_code == 302
    preview_url = response.headers["Location"]
    preview = organizer_client.get(preview_url).get_data(as_text=True)
    # 大瓦窑村 is not a unit yet: nothing is created without the organizer saying so.
    assert "0 人将报名" in preview and "不是有效的手机号码" in preview
    assert "新建单位“大瓦窑村”" in preview and "新建时的上级单位" in preview
    assert db.session.scalars(select(Enrollment)).all() == []
    response = post_form(
        organizer_client, preview_url, preview_url, {"unit-0": "new", "parent-0": "0"}
    )
    page = response.get_data(as_text=True)
    assert "导入完成" in page and "新建账号 1 个" in page
    batch = db.session.scalars(select(ImportBatch)).one()
    # The preview page redirects once confirmed; the token comes from the participants page.
    links = post_form(
        organizer_client,
        f"/series/{series.id}/participants",
        f"/series/{series.id}/import/{batch.id}/links.xlsx",
        {},
    )
    assert links.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(links.data))
    links_sheet = workbook.active
    assert [cell.value for cell in links_sheet[1]][:4] == ["姓名", "单位", "职务", "手机号"]
    # The mobile number is text, without an apostrophe or a country code.
    assert (links_sheet["D2"].value, links_sheet["D2"].data_type) == ("13910000001", "s")
    link = links_sheet["F2"].value
    assert re.search(r"/login/link/[\w-]{40,}$", link)
    new_user = organizer_client.application.test_client()
    response = new_user.get(link.replace("http://localhost", ""))
    assert response.headers["Location"] == "/account/password"
    assert "欢迎，王建国" in new_user.get("/").get_data(as_text=True)


def test_upload_problems_are_explained(organizer_client):
    series = create_series_via_form(organizer_client)
    response = upload(organizer_client, series, b"garbage", filename="x.xlsx")
    assert response.status_code == 400
    assert "无法将此文件读取为 Excel 工作簿" in response.get_data(as_text=True)
    response = upload(organizer_client, series, b"x", filename="x.pdf")
    assert "只能导入 .xlsx 和 .csv 文件" in response.get_data(as_text=True)


def test_a_50_mb_upload_is_refused_with_a_message(organizer_client):
    series = create_series_via_form(organizer_client)
    url = f"/series/{series.id}/import"
    token = csrf_token_from(organizer_client.get(url).get_data(as_text=True))
    # Encoded in memory: werkzeug's own builder would leave a temporary file open.
    body, length, boundary = stream_encode_multipart(
        {
            "csrf_token": token,
            "sheet": FileStorage(io.BytesIO(b"0" * (50 * 1024 * 1024)), filename="big.csv"),
        },
        use_tempfile=False,
    )
    response = organizer_client.post(
        url,
        input_stream=body,
        content_length=length,
        content_type=f'multipart/form-data; boundary="{boundary}"',
    )
    assert response.status_code == 413
    assert "上传的文件太大：最多 20 MB" in response.get_data(as_text=True)


def test_participant_sees_the_series_in_my_schedule(app, organizer_client, make_user):
    cadre = make_user(phone="13910000001", name="王建国")
    series = create_series_via_form(organizer_client)
    add_three_daily_sessions(organizer_client, series)
    post_form(
        organizer_client,
        f"/series/{series.id}/participants",
        f"/series/{series.id}/participants/add",
        {"add-identifier": "13910000001"},
    )
    post_form(organizer_client, f"/series/{series.id}/manage", f"/series/{series.id}/publish", {})
    client = app.test_client()
    log_in(client, cadre.phone)
    page = client.get("/my/schedule").get_data(as_text=True)
    assert page.count('<li class="session') == 3
    assert "2026年12月3日星期四 16:00–18:00" in page
    session_id = series.sessions[0].id
    page = client.get(f"/sessions/{session_id}").get_data(as_text=True)
    assert "进入直播" in page


ORGANIZER_PAGES = [
    ("get", "/series/{id}/manage"),
    ("get", "/series/{id}/edit"),
    ("get", "/series/{id}/participants"),
    ("get", "/series/{id}/import"),
    ("get", "/series/{id}/import/template.xlsx"),
    ("get", "/series/{id}/sessions/new"),
    ("get", "/sessions/{session}/agenda"),
    ("get", "/sessions/{session}/reschedule"),
    ("get", "/sessions/{session}/cancel"),
    ("get", "/sessions/{session}/edit"),
    ("post", "/series/{id}/publish"),
    ("post", "/sessions/{session}/delete"),
]


@pytest.mark.parametrize(("method", "pattern"), ORGANIZER_PAGES)
def test_organizer_pages_refuse_participants_and_other_organizers(
    app, make_user, make_series, method, pattern
):
    owner = make_user(Role.ORGANIZER, email="owner@example.org")
    make_user(Role.ORGANIZER, email="other@example.org")
    participant = make_user(email="cadre@example.org")
    series = make_series(organizers=[owner], participants=[participant])
    url = pattern.format(id=series.id, session=series.sessions[0].id)
    for email, expected in (
        ("cadre@example.org", 403),
        ("other@example.org", 403),
        ("owner@example.org", (200, 302)),
    ):
        client = app.test_client()
        log_in(client, email)
        if method == "get":
            status = client.get(url).status_code
        else:
            status = post_form(client, "/", url, {}).status_code
        assert status in (expected if isinstance(expected, tuple) else (expected,)), email
    anonymous = app.test_client().get(url) if method == "get" else app.test_client().post(url)
    assert anonymous.status_code in (302, 400)


def test_only_organizers_create_series_and_edit_speakers(app, make_user):
    make_user(email="cadre@example.org")
    client = app.test_client()
    log_in(client, "cadre@example.org")
    assert client.get("/series/new").status_code == 403
    assert client.get("/speakers").status_code == 403


def test_liaison_roster_is_for_liaisons_and_organizers(app, make_user, make_series):
    from webapp.people.models import UnitKind
    from webapp.people.units import (
        add_liaison,
        create_unit,
    )

    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    liaison = make_user(email="liaison@example.org", unit=village)
    member = make_user(email="member@example.org", unit=village)
    add_liaison(village, liaison)
    series = make_series(participants=[member])
    url = f"/series/{series.id}/units/{village.id}/roster"
    client = app.test_client()
    log_in(client, "member@example.org")
    assert client.get(url).status_code == 403
    client = app.test_client()
    log_in(client, "liaison@example.org")
    page = client.get(url).get_data(as_text=True)
    assert "大瓦窑村 名单" in page and member.display_name in page
    assert post_form(client, url, url, {}).status_code == 302
    db.session.expire_all()
    assert db.session.scalars(select(Enrollment)).one().confirmed_at is not None


def test_a_liaison_finds_their_rosters_and_sees_who_confirmed_them(app, make_user, make_series):
    from webapp.people.models import UnitKind
    from webapp.people.units import add_liaison, create_unit

    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    team = create_unit("第二村民小组", UnitKind.OTHER, village)  # a unit below the village
    liaison = make_user(email="liaison@example.org", name="联络员老张", unit=village)
    member = make_user(email="member@example.org", name="村民甲", unit=team)
    add_liaison(village, liaison)
    series = make_series(title="秋季研修班", participants=[member])
    roster = f"/series/{series.id}/units/{village.id}/roster"
    client = app.test_client()
    log_in(client, "liaison@example.org")
    home = client.get("/").get_data(as_text=True)
    assert "本单位名单" in home and roster in home and "尚未确认" in home
    detail = client.get(f"/series/{series.id}").get_data(as_text=True)
    assert roster in detail
    page = client.get(roster).get_data(as_text=True)
    assert "村民甲" in page and "第二村民小组" in page  # members of units below, too
    post_form(client, roster, roster, {})
    page = client.get(roster).get_data(as_text=True)
    assert "由 联络员老张 于" in page and "确认" in page
    assert "已确认" in client.get("/").get_data(as_text=True)
    # Someone without a unit to look after sees no roster link.
    other = app.test_client()
    log_in(other, "member@example.org")
    assert roster not in other.get("/").get_data(as_text=True)


def test_overlapping_participant_warning_can_be_accepted_in_the_form(
    app, organizer_client, make_user, make_series
):
    from datetime import UTC, datetime

    cadre = make_user(name="王建国")
    make_series(participants=[cadre], first_start=datetime(2026, 12, 3, 8, tzinfo=UTC))
    series = create_series_via_form(organizer_client, title="第二个班")
    post_form(
        organizer_client,
        f"/series/{series.id}/participants",
        f"/series/{series.id}/participants/add",
        {"add-identifier": cadre.email},
    )
    data = {"mode": "one", "one-day": "2026-12-03", "one-start": "16:30", "one-end": "17:30"}
    url = f"/series/{series.id}/sessions/new"
    response = post_form(organizer_client, url, url, data)
    assert response.status_code == 409
    assert "王建国 在" in response.get_data(as_text=True)
    assert (
        db.session.scalars(
            select(LectureSession).where(LectureSession.series_id == series.id)
        ).all()
        == []
    )
    response = post_form(organizer_client, url, url, {**data, "one-accept_warnings": "y"})
    assert response.status_code == 302


def test_self_enrollment_from_the_series_page(app, make_user, make_series):
    from webapp.series.models import Visibility

    make_user(email="cadre@example.org")
    series = make_series(visibility=Visibility.PUBLIC)
    series.allows_self_enrollment = True
    db.session.commit()
    client = app.test_client()
    log_in(client, "cadre@example.org")
    url = f"/series/{series.id}"
    assert "报名" in client.get(url).get_data(as_text=True)
    post_form(client, url, f"{url}/enroll", {})
    assert "您已报名" in client.get(url).get_data(as_text=True)
    post_form(client, url, f"{url}/leave", {})
    assert "您已退出本系列课程" in client.get(url).get_data(as_text=True)


def test_actions_on_many_people_ask_first_and_say_what_will_happen(app, make_user, make_series):
    organizer = make_user(Role.ORGANIZER, email="boss@example.org")
    cadres = [make_user(email=f"c{n}@example.org") for n in range(3)]
    series = make_series(organizers=[organizer], participants=cadres, status=SeriesStatus.DRAFT)
    client = app.test_client()
    log_in(client, "boss@example.org")
    manage = client.get(f"/series/{series.id}/manage").get_data(as_text=True)
    assert 'data-confirm="发布本系列课程？已报名的 3 名学员' in manage
    assert "它从未发布，因此不会通知任何人" in manage  # deleting a session not yet published
    people = client.get(f"/series/{series.id}/participants").get_data(as_text=True)
    assert people.count("data-confirm=") >= 2 and "原有链接将失效" in people


def test_a_session_that_took_place_offers_its_attendance_not_a_move(app, make_user, make_series):
    from webapp.sessions.models import SessionStatus

    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = make_series(organizers=[organizer], sessions=2)
    held, coming = series.sessions
    held.status = SessionStatus.ENDED
    db.session.commit()
    client = app.test_client()
    log_in(client, "organizer@example.org")
    page = client.get(f"/series/{series.id}/manage").text
    assert f"/sessions/{held.id}/attendance" in page
    assert f"/sessions/{held.id}/reschedule" not in page
    assert f"/sessions/{held.id}/cancel" not in page
    assert f"/sessions/{coming.id}/reschedule" in page
