import io

import openpyxl
import pytest
from sqlalchemy import func, select

from tests.helpers import NOW
from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
)
from webapp.people.logins import (
    redeem_login_token,
)
from webapp.people.models import Role, Unit, UnitKind, User
from webapp.people.units import (
    create_unit,
)
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.import_rows import (
    analyse,
)
from webapp.series.importing import (
    UnitChoice,
    confirm_import,
    login_links_for_batch,
    preview_import,
    store_batch,
)
from webapp.series.models import Enrollment
from webapp.series.services import (
    create_series,
)
from webapp.series.sheets import (
    read_sheet,
    template_workbook,
)

HEADER = ["姓名", "手机号", "邮箱", "单位", "角色"]


def xlsx(rows, header=HEADER) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows, encoding="utf-8", header=HEADER) -> bytes:
    lines = [",".join(header)] + [",".join(str(c) for c in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


@pytest.fixture
def series(make_user):
    organizer = make_user(Role.ORGANIZER, email="organizer@example.org")
    series = create_series(title="研修班", organizer=organizer, now=NOW)
    db.session.commit()
    return series


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_xlsx_rows_are_read_with_chinese_headers(app):
    rows = read_sheet(
        "名单.xlsx", xlsx([["王建国", 13910000001, "", "大瓦窑村", "学员"]]), max_rows=100
    )
    assert rows == [
        {
            "line": 2,
            "name": "王建国",
            "phone": "13910000001",
            "email": "",
            "unit": "大瓦窑村",
            "role": "学员",
        }
    ]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_utf8_and_gbk_is_read(app, encoding):
    rows = read_sheet(
        "名单.csv",
        csv_bytes([["李春梅", "13910000002", "", "小瓦窑村", ""]], encoding),
        max_rows=100,
    )
    assert rows[0]["name"] == "李春梅" and rows[0]["unit"] == "小瓦窑村"


def test_csv_with_mixed_encodings_is_refused_clearly(app):
    data = csv_bytes(
        [["王建国", "13910000001", "", "大瓦窑村", ""]], "utf-8"
    ) + "李春梅,13910000002,,小瓦窑村,\r\n".encode("gbk")
    with pytest.raises(InvalidInput, match="混用了两种编码"):
        read_sheet("名单.csv", data, max_rows=100)


def test_too_many_rows_are_refused_before_anything_is_written(app):
    rows = [[f"学员{i}", f"139{i:08d}", "", "", ""] for i in range(10_000)]
    with pytest.raises(InvalidInput, match="超过 5000 行"):
        read_sheet("big.csv", csv_bytes(rows), max_rows=5000)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "文件是空的。"),
        (b"not a zip at all", "无法将此文件读取为 Excel 工作簿（.xlsx）。"),
        (b"PK\x03\x04broken", "无法将此文件读取为 Excel 工作簿（.xlsx）。"),
    ],
)
def test_broken_workbooks_get_a_clear_message(app, data, message):
    with pytest.raises(InvalidInput) as refused:
        read_sheet("x.xlsx", data, max_rows=10)
    assert refused.value.message == message
    assert refused.value.field == "sheet"


def test_a_sheet_without_the_needed_columns_is_explained(app):
    with pytest.raises(InvalidInput, match="顶部没有一行写明列名"):
        read_sheet("x.csv", csv_bytes([["a", "b"]], header=["foo", "bar"]), max_rows=10)


def test_preview_lists_every_rows_problems(series, make_user):
    create_unit("大瓦窑村", UnitKind.VILLAGE)
    existing = make_user(phone="13910000009", name="老学员")
    enroll(existing, series, now=NOW)
    rows = read_sheet(
        "x.xlsx",
        xlsx(
            [
                ["王建国", "13910000001", "", "大瓦窑村", ""],  # fine
                ["", "13910000002", "", "", ""],  # no name
                ["坏号码", "12345", "", "", ""],  # bad phone
                ["坏邮箱", "", "not-an-email", "", ""],  # bad email
                ["重复", "139 1000 0001", "", "", ""],  # same person as row 2
                ["公式", "=A1", "", "", ""],  # formula
                ["新单位", "13910000003", "", "新成立社区", ""],  # unit to create
                ["老学员", "13910000009", "", "", ""],  # already enrolled
                ["角色错", "13910000004", "", "", "校长"],  # unknown role
            ]
        ),
        max_rows=100,
    )
    analysis = analyse(rows, series)
    problems = {row.line: " ".join(row.problems) for row in analysis.rows}
    assert problems[2] == ""
    assert "缺少姓名" in problems[3]
    assert "不是有效的手机号码" in problems[4]
    assert "不是有效的电子邮箱地址" in problems[5]
    assert "与第 2 行是同一人" in problems[6]
    assert "公式" in problems[7]
    assert problems[8] == "" and analysis.unknown_units == ["新成立社区"]
    assert problems[9] == "" and analysis.rows[7].already_enrolled
    assert "未知角色" in problems[10]
    assert count(User) == 2 and count(Unit) == 1  # the preview wrote nothing


def test_confirm_imports_valid_rows_in_one_go_with_accounts_units_and_liaisons(series):
    rows = read_sheet(
        "x.csv",
        csv_bytes(
            [
                ["王建国", "13910000001", "wang@example.org", "大瓦窑村", "联络员"],
                ["李春梅", "13910000002", "", "大瓦窑村", ""],
                ["", "13910000003", "", "", ""],
            ]
        ),
        max_rows=100,
    )
    batch = store_batch(series, "x.csv", rows, by=series.organizers[0], now=NOW)
    new = {"大瓦窑村": UnitChoice(create=True)}
    result = confirm_import(batch, series, units=new, now=NOW)
    db.session.commit()
    assert (result.enrolled, result.skipped, len(result.created_users)) == (2, 1, 2)
    assert result.created_units == ["大瓦窑村"]
    village = db.session.scalar(select(Unit).where(Unit.name == "大瓦窑村"))
    assert [u.display_name for u in village.liaisons] == ["王建国"]
    assert count(Enrollment) == 2
    with pytest.raises(Conflict):
        confirm_import(batch, series, units=new, now=NOW)


def test_new_accounts_get_one_time_login_links(series):
    rows = read_sheet("x.csv", csv_bytes([["王建国", "13910000001", "", "", ""]]), max_rows=10)
    batch = store_batch(series, "x.csv", rows, by=series.organizers[0], now=NOW)
    confirm_import(batch, series, now=NOW)
    [(user, token)] = login_links_for_batch(batch, now=NOW)
    [(_same, newer)] = login_links_for_batch(batch, now=NOW)
    assert redeem_login_token(token, now=NOW) is None  # replaced by the newer link
    assert redeem_login_token(newer, now=NOW) == user
    assert redeem_login_token(newer, now=NOW) is None  # one time only
    assert login_links_for_batch(batch, now=NOW) == []  # they have logged in now


def test_rows_with_a_unit_nobody_decided_are_skipped_and_say_why(series):
    rows = read_sheet(
        "x.csv", csv_bytes([["王建国", "13910000001", "", "无此单位", ""]]), max_rows=10
    )
    batch = store_batch(series, "x.csv", rows, by=series.organizers[0], now=NOW)
    result = confirm_import(batch, series, now=NOW)
    assert (result.enrolled, result.skipped) == (0, 1)
    assert "“无此单位”不是已有单位" in result.rows[0].problems[0]
    assert count(Unit) == 0


def test_a_misspelt_unit_is_matched_or_offered_never_created_by_itself(series):
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    village = create_unit("大瓦窑村", UnitKind.VILLAGE, township)
    community = create_unit("万泉寺社区", UnitKind.COMMUNITY, township)
    rows = read_sheet(
        "x.csv",
        csv_bytes(
            [
                ["王建国", "13910000001", "", "大瓦窑村委会", ""],  # the same, as people write it
                ["李春梅", "13910000002", "", "万泉寺社区居委会", ""],
                ["张德胜", "13910000003", "", "ＡＢＣ 万泉寺社区", ""],  # nothing like it
                ["刘国庆", "13910000004", "", "大瓦窖村", ""],  # a slip of the pen
                ["赵海燕", "13910000005", "", "新成立社区", ""],
            ]
        ),
        max_rows=10,
    )
    batch = store_batch(series, "x.csv", rows, by=series.organizers[0], now=NOW)
    preview = preview_import(batch, series, now=NOW)
    unknown = {u.name: u for u in preview.unknown_units}
    assert unknown["大瓦窑村委会"].choice.existing == village  # sure: taken unless changed
    assert unknown["万泉寺社区居委会"].choice.existing == community
    assert unknown["大瓦窖村"].suggestions[0] == village  # "did you mean": not taken by itself
    assert unknown["大瓦窖村"].choice == UnitChoice()
    assert count(Unit) == 3  # the preview created nothing
    choices = {"大瓦窖村": UnitChoice(existing=village),
               "新成立社区": UnitChoice(create=True, parent=township)}  # fmt: skip
    result = confirm_import(batch, series, units=choices, now=NOW)
    db.session.commit()
    assert (result.enrolled, result.skipped) == (4, 1)  # ＡＢＣ 万泉寺社区 undecided
    units = {row.name: row for row in result.rows}
    assert units["王建国"].user.unit == village and units["刘国庆"].user.unit == village
    assert units["李春梅"].user.unit == community
    new = db.session.scalar(select(Unit).where(Unit.name == "新成立社区"))
    assert new.parent == township and result.created_units == ["新成立社区"]


def test_a_title_row_above_the_header_is_skipped_and_the_position_kept(series, make_user):
    existing = make_user(phone="13910000009", name="老学员")
    data = csv_bytes(
        [["王建国", "13910000001", "", "", "村委会主任", ""],
         ["老学员", "13910000009", "", "", "党支部书记", ""]],
        header=["姓名", "手机号", "邮箱", "单位", "职务", "角色"],
    )  # fmt: skip
    titled = "卢沟桥乡参训人员名单（2026年秋季）\r\n".encode() + data
    rows = read_sheet("x.csv", titled, max_rows=10)
    assert [row["name"] for row in rows] == ["王建国", "老学员"]
    batch = store_batch(series, "x.csv", rows, by=series.organizers[0], now=NOW)
    result = confirm_import(batch, series, now=NOW)
    db.session.commit()
    people = {row.name: row.user for row in result.rows}
    assert people["王建国"].job_title == "村委会主任"
    assert existing.job_title == "党支部书记"


def test_the_template_is_a_workbook_with_the_expected_headers(app):
    workbook = openpyxl.load_workbook(io.BytesIO(template_workbook()))
    headers = [c.value for c in workbook.active[1]]
    assert headers == ["姓名", "手机号", "邮箱", "单位", "职务", "角色"]
    rows = read_sheet("t.xlsx", template_workbook(), max_rows=10)
    assert len(rows) == 2
