"""Platform exports (Tencent Meeting, Zoom): read through a preset or typed column names,
previewed, matched by mobile number, name and unit or by hand, imported once, and counted
by the same rules as everything else."""

import io
from datetime import UTC, datetime

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import csrf_token_from, log_in
from webapp.attendance.imports import parse_minutes
from webapp.attendance.reports import session_rows
from webapp.attendance.rules import Status
from webapp.db import db
from webapp.people.models import Role, UnitKind
from webapp.people.units import create_unit

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 16:00–18:00 in Shanghai

TENCENT = """\ufeff腾讯会议参会成员明细（会议号 123 456 789）
用户昵称,手机号,部门,入会时间,退会时间,参会时长
李春梅,+86 139 1000 0001,,2026-11-26 16:00:05,2026-11-26 17:02:00,62分钟
李春梅,13910000001,,2026-11-26 17:03:00,2026-11-26 18:00:00,57分钟
王建国,,大瓦窑村,2026-11-26 16:20:00,2026-11-26 18:00:00,100分钟
小王,,,2026-11-26 16:00:00,2026-11-26 18:00:00,120分钟
张德胜,13910000003,,2026-11-26 17:00:00,2026-11-26 16:10:00,
"""


@pytest.fixture
def course(app, make_series, make_user):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    people = [
        make_user(phone="13910000001", name="李春梅", unit=village),
        make_user(phone="13910000002", name="王建国", unit=village),
        make_user(phone="13910000003", name="张德胜"),
        make_user(phone="13910000004", name="王小二"),
    ]
    series = make_series(organizers=[organizer], participants=people, first_start=START)
    client = app.test_client()
    log_in(client, "organizer@example.org")
    return {"session": series.sessions[0], "people": people, "client": client}


def upload(client, session, data: bytes, filename: str, platform: str, **columns):
    url = f"/sessions/{session.id}/attendance/import"
    token = csrf_token_from(client.get(url).text)
    return client.post(
        url,
        data={
            "csrf_token": token,
            "platform": platform,
            "sheet": (io.BytesIO(data), filename),
            **columns,
        },  # fmt: skip
        content_type="multipart/form-data",
    )


def test_a_tencent_meeting_export_is_previewed_matched_and_imported_once(app, course):
    session, client = course["session"], course["client"]
    response = upload(client, session, TENCENT.encode(), "参会明细.csv", "tencent_meeting")
    assert response.status_code == 302, response.text
    preview_url = response.headers["Location"]
    preview = client.get(preview_url).text
    assert "5 行中 3 行已匹配" in preview or "3 of 5" in preview
    assert "按手机号" in preview and "按姓名和单位" in preview
    assert "退出早于进入" in preview  # 张德胜's row leaves before it joins
    # 小王 is matched by hand to 王小二.
    token = csrf_token_from(preview)
    xiaoer = course["people"][3]
    done = client.post(preview_url, data={"csrf_token": token, "match-6": str(xiaoer.id)})
    assert done.status_code == 302
    rows = {row.user.display_name: row for row in session_rows(session)}
    assert rows["李春梅"].status == Status.PRESENT  # two rows, a one-minute break bridged
    assert len(rows["李春梅"].record.intervals) == 1
    assert rows["王建国"].status == Status.LATE and rows["王建国"].record.minutes == 100
    assert rows["王小二"].status == Status.PRESENT
    assert rows["张德胜"].status == Status.ABSENT
    again = client.post(preview_url, data={"csrf_token": token})
    assert again.status_code == 302
    assert len(session_rows(session)[0].record.intervals) == 1  # nothing twice
    from webapp.sessions.models import AttendanceEvent

    assert db.session.scalar(db.select(db.func.count()).select_from(AttendanceEvent)) == 8


def test_a_zoom_report_in_xlsx_with_its_own_time_format(app, course):
    session, client = course["session"], course["client"]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Name (Original Name)", "User Email", "Join Time", "Leave Time",
                  "Duration (Minutes)"])  # fmt: skip
    sheet.append(["张德胜", "", "11/26/2026 04:00:00 PM", "11/26/2026 05:50:00 PM", "110"])
    data = io.BytesIO()
    book.save(data)
    response = upload(client, session, data.getvalue(), "zoom.xlsx", "zoom")
    assert response.status_code == 302
    token = csrf_token_from(client.get(response.headers["Location"]).text)
    client.post(response.headers["Location"], data={"csrf_token": token})
    rows = {row.user.display_name: row for row in session_rows(session)}
    assert rows["张德胜"].record.minutes == 110 and rows["张德胜"].status == Status.PRESENT


def test_typed_column_names_and_a_duration_only_export(app, course):
    session, client = course["session"], course["client"]
    sheet = "观众姓名,时长\n王建国,1小时40分钟\n".encode()
    response = upload(client, session, sheet, "dingtalk.csv", "dingtalk_live",
                      name="观众姓名", duration="时长")  # fmt: skip
    assert response.status_code == 302
    token = csrf_token_from(client.get(response.headers["Location"]).text)
    client.post(response.headers["Location"], data={"csrf_token": token})
    rows = {row.user.display_name: row for row in session_rows(session)}
    assert rows["王建国"].record.minutes == 100


def test_an_unreadable_export_says_what_to_do(app, course):
    session, client = course["session"], course["client"]
    response = upload(client, session, b"a,b\n1,2\n", "x.csv", "tencent_meeting")
    assert response.status_code == 400 and "前十行" in response.text
    empty = upload(client, session, b"", "x.csv", "tencent_meeting")
    assert empty.status_code == 400
    wrong = upload(client, session, b"data", "x.pdf", "zoom")
    assert wrong.status_code == 400


@given(st.text(max_size=40))
def test_reading_a_duration_never_fails(text):
    value = parse_minutes(text)
    assert value is None or 0 <= value < 100000 + 1000 * 60
