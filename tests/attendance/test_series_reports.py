"""A series' attendance: participants × sessions, each unit's rate ranked with who was
absent, the liaison's view of their unit (with who has not joined a live session yet), and
the exports read back."""

import csv
import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest

from tests.helpers import log_in
from webapp.db import db
from webapp.people.models import Role, UnitKind
from webapp.people.units import add_liaison, create_unit
from webapp.sessions.models import AttendanceKind, AttendanceSource, SessionStatus
from webapp.streaming.broadcasts import add_attendance

START = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # three days, in the past


def watch(user, session, minutes=120):
    for second in range(0, minutes * 60, 30):
        add_attendance(user.id, session.id, AttendanceSource.PLAYER, AttendanceKind.HEARTBEAT,
                       session.starts_at + timedelta(seconds=second))  # fmt: skip


@pytest.fixture
def course(app, make_series, make_user):
    village = create_unit("大瓦窑村", UnitKind.VILLAGE)
    other = create_unit("小瓦窑村", UnitKind.VILLAGE)
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    a = make_user(email="a@example.org", name="李春梅", unit=village)
    b = make_user(email="b@example.org", name="王建国", unit=village)
    c = make_user(email="c@example.org", name="张德胜", unit=other)
    liaison = make_user(email="liaison@example.org", name="联络员", unit=village)
    add_liaison(village, liaison)
    series = make_series(organizers=[organizer], participants=[a, b, c], sessions=3,
                         first_start=START)  # fmt: skip
    one, two, three = series.sessions
    for person in (a, b, c):
        watch(person, one)
    watch(a, two)
    watch(b, two, minutes=30)  # left early
    watch(c, two)
    watch(a, three)
    watch(c, three)
    db.session.commit()
    return {"series": series, "village": village, "sessions": (one, two, three)}


def client_of(app, email):
    client = app.test_client()
    log_in(client, email)
    return client


def test_the_matrix_and_the_units_ranked_with_who_was_absent(app, course):
    page = (
        client_of(app, "organizer@example.org")
        .get(f"/series/{course['series'].id}/attendance")
        .text
    )
    # 小瓦窑村: 张德胜 3 of 3 → 100 %; 大瓦窑村: 李春梅 3 of 3, 王建国 1 of 3 → 4 of 6.
    units = page.split("各单位出勤率")[-1].split("</table>")[0]
    assert units.index("小瓦窑村") < units.index("大瓦窑村")
    assert "100%（3/3）" in units and "67%（4/6）" in units
    village_line = units.split("67%（4/6）")[1].split("</tr>")[0]
    assert "王建国" in village_line and "李春梅" not in village_line


def test_the_liaison_sees_their_unit_and_who_has_not_joined_a_live_session(app, course):
    one, two, three = course["sessions"]
    three.status = SessionStatus.LIVE
    db.session.commit()
    client = client_of(app, "liaison@example.org")
    url = f"/series/{course['series'].id}/units/{course['village'].id}/attendance"
    page = client.get(url).text
    assert "李春梅" in page and "王建国" in page and "张德胜" not in page
    live = page.split("正在直播")[1].split("</section>")[0]
    assert "王建国" in live and "李春梅" not in live
    assert client.get(f"/series/{course['series'].id}/attendance").status_code == 403


def test_the_series_exports_read_back(app, course):
    client = client_of(app, "organizer@example.org")
    series = course["series"]
    data = client.get(f"/series/{series.id}/attendance.csv").data
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == [
        "姓名",
        "单位",
        "11-24 16:00",
        "11-25 16:00",
        "11-26 16:00",
        "出席次数",
        "在线分钟",
    ]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["王建国"][2:] == ["✓", "早", "✗", "1", "150"]
    assert by_name["张德胜"][2:] == ["✓", "✓", "✓", "3", "360"]
    book = openpyxl.load_workbook(
        io.BytesIO(client.get(f"/series/{series.id}/attendance.xlsx").data)
    )
    sheet = book["出勤汇总"]
    assert sheet.freeze_panes == "A2"
    lines = {row[0]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert lines["李春梅"][2:] == ("✓", "✓", "✓", 3, 360)
    summary = {row[0]: row for row in book["单位汇总"].iter_rows(min_row=2, values_only=True)}
    assert summary["大瓦窑村"] == ("大瓦窑村", 2, 6, 4, 67, "王建国")
    assert summary["小瓦窑村"] == ("小瓦窑村", 1, 3, 3, 100, None)


def test_the_closing_workbook_has_what_a_training_office_files(app, course, make_user):
    from webapp.attendance.reports import override_status
    from webapp.attendance.rules import Status
    from webapp.db import utcnow

    one, two, three = course["sessions"]
    stranger = make_user(email="stranger@example.org", name="旁听者")
    watch(stranger, one, minutes=10)  # came without being enrolled
    from webapp.people.models import User

    organizer = course["series"].organizers[0]
    wang = db.session.scalars(db.select(User).where(User.email == "b@example.org")).one()
    override_status(three, wang, Status.EXCUSED, "防汛值班", by=organizer, now=utcnow())
    db.session.commit()
    client = client_of(app, "organizer@example.org")
    data = client.get(f"/series/{course['series'].id}/attendance/closing.xlsx").data
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames[:4] == ["课程表", "签到表1 11-24", "签到表2 11-25", "签到表3 11-26"]
    timetable = list(book["课程表"].iter_rows(min_row=2, values_only=True))
    assert timetable[0][0] == "2026-11-24" and timetable[0][1] == "16:00–18:00"
    assert timetable[0][3] and timetable[0][4]  # a lecture and its speaker
    sign_in = {row[1]: row for row in book["签到表1 11-24"].iter_rows(min_row=3, values_only=True)}
    assert sign_in["李春梅"][6:8] == (120, "出席") and sign_in["李春梅"][4] == datetime(
        2026, 11, 24, 16, 0
    )
    log = list(book["调整与请假记录"].iter_rows(min_row=2, values_only=True))
    assert log[0][2:] == ("王建国", organizer.display_name, "状态改为请假", "防汛值班")
    check = {row[0]: row for row in book["报名与出勤核对"].iter_rows(min_row=2, values_only=True)}
    assert check["王建国"][2:] == ("是", 3, 1, 1, 1, 0)
    assert check["旁听者"][2] == "否（未报名却有进入记录）"
    credits = {row[0]: row for row in book["学时"].iter_rows(min_row=2, values_only=True)}
    assert credits["李春梅"][2:4] == (3, 8.0) and credits["王建国"][2:4] == (1, 2.7)


def test_the_sign_in_sheets_print_as_a_pdf_one_sheet_per_session(app, course, make_user):
    import pypdf

    series = course["series"]
    hostile = make_user(email="h@example.org", name="<b>赵&amp;😀</b>", unit=course["village"])
    from webapp.series.models import Enrollment, EnrollmentSource, EnrollmentStatus

    db.session.add(Enrollment(user=hostile, series=series, status=EnrollmentStatus.ENROLLED,
                              source=EnrollmentSource.IMPORT))  # fmt: skip
    db.session.commit()
    response = client_of(app, "organizer@example.org").get(
        f"/series/{series.id}/attendance/signin.pdf"
    )
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("inline;")
    reader = pypdf.PdfReader(io.BytesIO(response.data))
    pages = [page.extract_text(extraction_mode="layout") for page in reader.pages]
    assert len(pages) == 3  # one sheet per session that has started, each on its own page
    for number, (text, session) in enumerate(zip(pages, course["sessions"], strict=True), 1):
        assert f"签到表（第 {number} 讲）" in text and session.title in text
        assert "签名" in text and f"第 {number} 页" in text
    first = pages[0]
    assert "2026-11-24 16:00–18:00（Asia/Shanghai）" in first
    rows = [line.split() for line in first.splitlines() if line.strip()[:1].isdigit()]
    assert ["2", "李春梅", "大瓦窑村", "16:00", "18:00", "120", "出席"] in rows
    assert ["4", "张德胜", "小瓦窑村", "16:00", "18:00", "120", "出席"] in rows
    # The newcomer's name is printed as typed (markup not obeyed, the emoji boxed), and
    # they never came.
    assert ["1", "<b>赵&amp;", "大瓦窑村", "0", "缺勤"] in rows and "□</b>" in first
    # Only organizers of the series (and admins) may print it.
    assert (
        client_of(app, "a@example.org")
        .get(f"/series/{series.id}/attendance/signin.pdf")
        .status_code
        == 403
    )
