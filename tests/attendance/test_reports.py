"""A session's attendance report: statuses with their explanations, filters, the status set
by hand with its trail, a participant's own record, and the exports read back cell by cell."""

import csv
import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest

from tests.helpers import log_in, post_form
from webapp.db import db
from webapp.people.models import Role, UnitKind
from webapp.people.units import create_unit
from webapp.sessions.models import AttendanceKind, AttendanceSource
from webapp.streaming.broadcasts import add_attendance

START = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai, in the past


@pytest.fixture
def course(app, make_series, make_user):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    office = create_unit("乡政府机关", UnitKind.OFFICE)
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org", name="组织者")
    present = make_user(email="a@example.org", name="李春梅", unit=village, phone="13910000001")
    late = make_user(email="b@example.org", name="王建国", unit=village)
    absent = make_user(email="c@example.org", name='=HYPERLINK("x")', unit=office)
    series = make_series(
        organizers=[organizer], participants=[present, late, absent], first_start=START
    )
    session = series.sessions[0]
    for second in range(0, 7200, 30):
        add_attendance(present.id, session.id, AttendanceSource.PLAYER,
                       AttendanceKind.HEARTBEAT, START + timedelta(seconds=second))  # fmt: skip
    for second in range(20 * 60, 7200, 30):
        add_attendance(late.id, session.id, AttendanceSource.PLAYER,
                       AttendanceKind.HEARTBEAT, START + timedelta(seconds=second))  # fmt: skip
    db.session.commit()
    return {"session": session, "present": present, "late": late, "absent": absent,
            "village": village}  # fmt: skip


def organizer(app):
    client = app.test_client()
    log_in(client, "organizer@example.org")
    return client


def test_the_report_gives_each_status_with_its_explanation(app, course):
    page = organizer(app).get(f"/sessions/{course['session'].id}/attendance").text
    assert "16:00 进入，18:00 离开 → 100% → 出席" in page
    assert "16:20 进入，18:00 离开 → 83% → 出席（迟到）" in page
    assert "没有进入记录 → 0% → 缺勤" in page


def test_the_report_filters_by_unit_and_status(app, course):
    client = organizer(app)
    url = f"/sessions/{course['session'].id}/attendance"
    by_unit = client.get(f"{url}?unit={course['village'].id}").text
    assert "李春梅" in by_unit and "HYPERLINK" not in by_unit
    late = client.get(f"{url}?status=late").text
    assert "王建国" in late and "李春梅" not in late.split("<tbody>")[1]
    assert client.get(f"{url}?status=nonsense&unit=abc").status_code == 200


def test_a_status_set_by_hand_needs_a_reason_and_is_kept_in_the_trail(app, course):
    client = organizer(app)
    session, absent = course["session"], course["absent"]
    url = f"/sessions/{session.id}/attendance/{absent.id}"
    refused = post_form(client, url, url, {"status": "excused", "reason": ""})
    assert refused.status_code == 400 and "请填写原因" in refused.text
    assert (
        post_form(client, url, url, {"status": "excused", "reason": "乡里开会，已请假"}).status_code
        == 302
    )
    page = client.get(f"/sessions/{session.id}/attendance").text
    assert "请假" in page and "乡里开会，已请假" in page
    post_form(client, url, url, {"status": "rules", "reason": "会议取消，按规则计"})
    person = client.get(url).text
    assert "乡里开会，已请假" in person and "会议取消，按规则计" in person  # the trail
    assert "缺勤" in client.get(f"/sessions/{session.id}/attendance?status=absent").text


def test_participants_see_their_own_record_and_nobody_else_s(app, course):
    client = app.test_client()
    log_in(client, "a@example.org")
    mine = client.get("/my/attendance").text
    assert "→ 100% → 出席" in mine
    assert "王建国" not in mine and "83%" not in mine
    assert client.get(f"/sessions/{course['session'].id}/attendance").status_code == 403
    url = f"/sessions/{course['session'].id}/attendance/{course['late'].id}"
    assert client.get(url).status_code == 403


def test_the_csv_export_opens_in_excel_and_reads_back(app, course):
    response = organizer(app).get(f"/sessions/{course['session'].id}/attendance.csv")
    assert response.data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == [
        "姓名",
        "单位",
        "手机号",
        "首次进入",
        "最后离开",
        "在线分钟",
        "出勤率",
        "状态",
        "说明",
    ]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["李春梅"][1:8] == ["大瓦窑村", "13910000001", "2026-11-26 16:00",
                                     "2026-11-26 18:00", "120", "100", "出席"]  # fmt: skip
    assert by_name["王建国"][3] == "2026-11-26 16:20" and by_name["王建国"][7] == "出席（迟到）"
    assert '\'=HYPERLINK("x")' in by_name  # a formula stays text
    assert by_name['\'=HYPERLINK("x")'][7] == "缺勤"


def test_the_xlsx_export_reads_back_cell_by_cell(app, course):
    response = organizer(app).get(f"/sessions/{course['session'].id}/attendance.xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(response.data))
    sheet = workbook["出勤明细"]
    assert [cell.value for cell in sheet[1]][:3] == ["姓名", "单位", "手机号"]
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["I"].width == 70
    rows = {row[0]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["李春梅"][3] == datetime(2026, 11, 26, 16, 0)  # in the series' zone
    assert rows["王建国"][5:8] == (100, 83, "出席（迟到）")
    formula = sheet.cell(row=2 + list(rows).index('=HYPERLINK("x")'), column=1)
    assert formula.data_type == "s"  # text, not a formula
    summary = workbook["单位汇总"]
    lines = {row[0]: row for row in summary.iter_rows(min_row=2, values_only=True)}
    assert lines["大瓦窑村"] == ("大瓦窑村", 2, 1, 1, 0, 0, 0, 0, 100)
    assert lines["乡政府机关"] == ("乡政府机关", 1, 0, 0, 0, 1, 0, 0, 0)
    assert summary.freeze_panes == "A2"


def test_an_excuse_note_is_sent_by_the_participant_and_accepted_by_the_organizer(app, course):
    session = course["session"]
    participant = app.test_client()
    log_in(participant, "c@example.org")
    empty = post_form(participant, "/my/attendance", f"/sessions/{session.id}/excuse", {"text": ""})
    assert empty.status_code == 302
    sent = post_form(participant, "/my/attendance", f"/sessions/{session.id}/excuse",
                     {"text": "村里防汛值班"})  # fmt: skip
    assert sent.status_code == 302
    assert "村里防汛值班" in participant.get("/my/attendance").text
    client = organizer(app)
    report = client.get(f"/sessions/{session.id}/attendance").text
    assert "村里防汛值班" in report
    from webapp.attendance.models import ExcuseNote

    note = db.session.scalars(db.select(ExcuseNote)).one()
    url = f"/sessions/{session.id}/excuses/{note.id}/accept"
    assert post_form(client, f"/sessions/{session.id}/attendance", url, {}).status_code == 302
    exported = client.get(f"/sessions/{session.id}/attendance.csv").data.decode("utf-8-sig")
    rows = {row[0]: row for row in csv.reader(io.StringIO(exported))}
    assert rows['\'=HYPERLINK("x")'][7] == "请假"
    assert "村里防汛值班" in rows['\'=HYPERLINK("x")'][8]
    mine = participant.get("/my/attendance").text
    assert "已接受" in mine and "请假" in mine
    # Someone else cannot send a note for them, nor decide.
    other = app.test_client()
    log_in(other, "a@example.org")
    assert post_form(other, "/my/attendance", url, {}).status_code == 403


def test_make_up_by_replay_is_flagged_in_the_report_and_the_exports(app, course):
    session, absent = course["session"], course["absent"]
    session.series.makeup_days = 7
    for second in range(0, 7200, 30):
        add_attendance(absent.id, session.id, AttendanceSource.REPLAY, AttendanceKind.HEARTBEAT,
                       session.ends_at + timedelta(days=1, seconds=second))  # fmt: skip
    db.session.commit()
    client = organizer(app)
    page = client.get(f"/sessions/{session.id}/attendance").text
    assert "+ 120 分钟回放（补学期限内）" in page and "出席（补学）" in page
    exported = client.get(f"/sessions/{session.id}/attendance.csv").data.decode("utf-8-sig")
    rows = {row[0]: row for row in csv.reader(io.StringIO(exported))}
    assert rows['\'=HYPERLINK("x")'][7] == "出席（补学）"


def test_a_session_still_on_is_in_progress_not_absent(app, make_series, make_user):
    from webapp.db import utcnow

    cadre = make_user(email="now@example.org")
    make_series(participants=[cadre], first_start=utcnow() - timedelta(minutes=10))
    client = app.test_client()
    log_in(client, "now@example.org")
    page = client.get("/my/attendance").text
    assert "进行中" in page and "缺勤 ·" not in page and "提交请假说明" not in page


def test_an_unanswered_check_is_explained(app, course):
    session, present = course["session"], course["present"]
    check = START + timedelta(minutes=40)
    add_attendance(present.id, session.id, AttendanceSource.PLAYER, AttendanceKind.CHECK, check)
    add_attendance(present.id, session.id, AttendanceSource.PLAYER, AttendanceKind.ANSWER,
                   check + timedelta(minutes=15))  # fmt: skip
    db.session.commit()
    page = organizer(app).get(f"/sessions/{session.id}/attendance").text
    assert "16:40–16:55 未应答“还在听课吗？”" in page and "→ 88% → 出席" in page


def test_the_player_asks_at_the_series_moments_and_records_question_and_answer(app, course):
    from webapp.sessions.models import SessionStatus, StreamMode
    from webapp.streaming.broadcasts import stream_of
    from webapp.streaming.keys import viewer_token
    from webapp.streaming.presence import check_moments

    session, present = course["session"], course["present"]
    session.series.presence_checks = 3
    session.stream_mode, session.status = StreamMode.HOSTED, SessionStatus.LIVE
    stream_of(session)
    db.session.commit()
    moments = check_moments(session, present.id)
    assert len(moments) == 3 and moments == check_moments(session, present.id)
    assert moments != check_moments(session, course["late"].id)
    length = session.ends_at - session.starts_at
    assert all(
        session.starts_at + length / 10 <= m <= session.ends_at - length / 10 for m in moments
    )
    client = app.test_client()
    log_in(client, "a@example.org")
    page = client.get(f"/sessions/{session.id}/watch").text
    assert " ".join(m.isoformat() for m in moments) in page and "还在听课吗？" in page
    token = viewer_token(present.id, session.id)
    for kind in ("check", "answer"):
        assert (
            client.post(
                f"/sessions/{session.id}/heartbeat", json={"token": token, "kind": kind}
            ).status_code
            == 204
        )


def test_the_session_report_draws_the_viewers_over_time(app, course):
    from webapp.streaming.models import ViewerSample

    session = course["session"]
    for minute, viewers in ((0, 1), (30, 2), (60, 2)):
        db.session.add(ViewerSample(session_id=session.id, at=START + timedelta(minutes=minute),
                                    viewers=viewers))  # fmt: skip
    db.session.commit()
    page = organizer(app).get(f"/sessions/{session.id}/attendance").text
    assert "观看人数变化" in page and "<polyline" in page and "600.0,4.0" in page
