"""A session's attendance as CSV (UTF-8 with a BOM, so Excel opens Chinese correctly) and
XLSX (Chinese headers, column widths, a frozen header row, times in the series' zone, a
summary sheet per unit). Text that could be a formula never becomes one, in either."""

import io
from collections import Counter

import openpyxl

from webapp.attendance.explain import explain, status_name
from webapp.attendance.reports import Row
from webapp.attendance.rules import Status
from webapp.series.sheets import national_mobile
from webapp.spreadsheets import append_row, csv_bytes, finish_sheet
from webapp.zones import zone

HEADERS = ("姓名", "单位", "手机号", "首次进入", "最后离开", "在线分钟", "出勤率", "状态", "说明")
WIDTHS = (12, 22, 14, 18, 18, 10, 8, 12, 70)
SUMMARY_HEADERS = ("单位", "应到", "出席", "迟到", "早退", "缺勤", "请假", "补学", "出勤率")


def local_naive(moment, tz_name):
    return moment.astimezone(zone(tz_name)).replace(tzinfo=None) if moment else None


def _values(row: Row, tz_name: str) -> tuple:
    record = row.record
    return (
        row.user.display_name,
        row.unit_name,
        national_mobile(row.user.phone),
        local_naive(record.first_join, tz_name),
        local_naive(record.last_leave, tz_name),
        record.minutes,
        round(record.share * 100),
        status_name(row.status),
        explain(record, tz_name, override=row.override),
    )


def session_csv(rows: list[Row], tz_name: str) -> bytes:
    return csv_bytes(HEADERS, (_values(row, tz_name) for row in rows))


def unit_summary(rows: list[Row]) -> list[tuple]:
    """Per unit: enrolled, each status, and the attendance rate (present or late, of all)."""
    by_unit: dict[str, Counter] = {}
    for row in rows:
        by_unit.setdefault(row.unit_name, Counter())[row.status] += 1
    summary = []
    for unit, counts in by_unit.items():
        total = sum(counts.values())
        attended = counts[Status.PRESENT] + counts[Status.LATE] + counts[Status.MADE_UP]
        summary.append(
            (
                unit or "（无单位）",
                total,
                counts[Status.PRESENT],
                counts[Status.LATE],
                counts[Status.LEFT_EARLY],
                counts[Status.ABSENT],
                counts[Status.EXCUSED],
                counts[Status.MADE_UP],
                round(100 * attended / total) if total else 0,
            )
        )
    return sorted(summary, key=lambda line: (-line[-1], line[0]))


def session_xlsx(rows: list[Row], tz_name: str, *, title: str) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "出勤明细"
    sheet.append(HEADERS)
    for row in rows:
        append_row(sheet, _values(row, tz_name))
    finish_sheet(sheet, WIDTHS)
    summary = workbook.create_sheet("单位汇总")
    summary.append(SUMMARY_HEADERS)
    for line in unit_summary(rows):
        summary.append(line)
        summary.cell(summary.max_row, 1).data_type = "s"
    finish_sheet(summary, (24, 8, 8, 8, 8, 8, 8, 8, 10))
    workbook.properties.title = title
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


MARKS = {
    Status.PRESENT: "✓",
    Status.LATE: "迟",
    Status.LEFT_EARLY: "早",
    Status.ABSENT: "✗",
    Status.MADE_UP: "补",
    Status.EXCUSED: "假",
}


def _matrix_header(matrix, tz_name: str) -> list[str]:
    columns = [local_naive(s.starts_at, tz_name).strftime("%m-%d %H:%M") for s in matrix.sessions]
    return ["姓名", "单位", *columns, "出席次数", "在线分钟"]


def _matrix_lines(matrix) -> list[list]:
    lines = []
    for user, unit in matrix.people:
        marks = [MARKS[matrix.cells[(user.id, s.id)].status] for s in matrix.sessions]
        lines.append(
            [user.display_name, unit, *marks, matrix.attended(user.id), matrix.minutes(user.id)]
        )
    return lines


def series_csv(matrix, tz_name: str) -> bytes:
    return csv_bytes(_matrix_header(matrix, tz_name), _matrix_lines(matrix))


def series_xlsx(matrix, units, tz_name: str, *, title: str) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "出勤汇总"
    sheet.append(_matrix_header(matrix, tz_name))
    for line in _matrix_lines(matrix):
        sheet.append(line)
        for cell in sheet[sheet.max_row][:2]:
            cell.data_type = "s"
    finish_sheet(sheet, (12, 22, *([12] * len(matrix.sessions)), 10, 10))
    summary = workbook.create_sheet("单位汇总")
    summary.append(("单位", "人数", "应出席人次", "实出席人次", "出勤率", "缺勤人员"))
    for line in units:
        summary.append(
            (line.unit or "（无单位）", line.people, line.expected, line.attended,
             line.rate, "、".join(line.absent_names))
        )  # fmt: skip
        summary.cell(summary.max_row, 1).data_type = "s"
        summary.cell(summary.max_row, 6).data_type = "s"
    finish_sheet(summary, (24, 8, 12, 12, 8, 60))
    workbook.properties.title = title
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
