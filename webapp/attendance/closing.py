"""Closing the class (结班): the workbook a training office files. Timetable with lecturers
and topics, a sign-in sheet (签到表) per session with minutes present, the per-unit summary,
the log of statuses set by hand and excuse notes, enrolled-versus-attended reconciliation,
and credit hours (学时) per participant under the series' rule."""

import io
from datetime import datetime

import openpyxl
from sqlalchemy import select

from webapp.attendance.explain import status_name
from webapp.attendance.exports import local_naive
from webapp.attendance.models import AttendanceOverride, ExcuseNote
from webapp.attendance.reports import ATTENDED, SeriesMatrix, unit_report
from webapp.db import db
from webapp.people.models import User
from webapp.series.models import Series
from webapp.series.sheets import national_mobile
from webapp.sessions.models import AttendanceEvent
from webapp.spreadsheets import finish_sheet

TEXT_COLUMNS = 6  # the leading columns of a sheet that are names and other text


def credit_hours(matrix: SeriesMatrix, user_id: int, minutes_per_credit: int) -> float:
    """学时: the length of every session attended (present, late or made up), one credit per
    `minutes_per_credit` minutes, to one decimal."""
    minutes = sum(
        (session.ends_at - session.starts_at).total_seconds() / 60
        for session in matrix.sessions
        if matrix.cells[(user_id, session.id)].status in ATTENDED
    )
    return round(minutes / minutes_per_credit, 1)


def speakers_line(lecture) -> str:
    """A lecture's speakers as the timetable and the sign-in sheets print them."""
    return "、".join(
        " ".join(part for part in (s.name, s.title, s.affiliation) if part)
        for s in lecture.speakers
    )


def closing_workbook(series: Series, matrix: SeriesMatrix, *, now: datetime) -> bytes:
    tz = series.timezone
    workbook = openpyxl.Workbook()
    timetable = workbook.active
    timetable.title = "课程表"
    timetable.append(("日期", "时间", "课次", "专题", "主讲人"))
    for session in sorted(series.sessions, key=lambda s: s.starts_at):
        if session.is_cancelled:
            continue
        day = local_naive(session.starts_at, tz).strftime("%Y-%m-%d")
        hours = (
            f"{local_naive(session.starts_at, tz):%H:%M}–{local_naive(session.ends_at, tz):%H:%M}"
        )
        for lecture in session.lectures or [None]:
            speakers = speakers_line(lecture) if lecture else ""
            _text_row(timetable, (day, hours, session.title, lecture.title if lecture else "",
                                  speakers))  # fmt: skip
    finish_sheet(timetable, (12, 13, 16, 36, 48))

    for number, session in enumerate(matrix.sessions, start=1):
        sheet = workbook.create_sheet(f"签到表{number} {local_naive(session.starts_at, tz):%m-%d}")
        sheet.append((f"{series.title} · {session.title} · "
                      f"{local_naive(session.starts_at, tz):%Y-%m-%d %H:%M}",))  # fmt: skip
        sheet.append(("序号", "姓名", "单位", "手机号", "首次进入", "最后离开", "在线分钟", "状态",
                      "签名"))  # fmt: skip
        for index, (user, unit) in enumerate(matrix.people, start=1):
            row = matrix.cells[(user.id, session.id)]
            record = row.record
            sheet.append((index, user.display_name, unit, national_mobile(user.phone),
                          local_naive(record.first_join, tz), local_naive(record.last_leave, tz),
                          record.minutes, status_name(row.status), ""))  # fmt: skip
            for cell in sheet[sheet.max_row][1:4]:
                cell.data_type = "s"
            for cell in sheet[sheet.max_row][4:6]:
                cell.number_format = "hh:mm"
        sheet.freeze_panes = "A3"
        for column, width in zip("ABCDEFGHI", (6, 12, 22, 14, 10, 10, 10, 12, 16), strict=True):
            sheet.column_dimensions[column].width = width

    summary = workbook.create_sheet("单位汇总")
    summary.append(("单位", "人数", "应出席人次", "实出席人次", "出勤率", "缺勤人员"))
    for line in unit_report(matrix):
        _text_row(summary, (line.unit or "（无单位）", line.people, line.expected, line.attended,
                            line.rate, "、".join(line.absent_names)))  # fmt: skip
    finish_sheet(summary, (24, 8, 12, 12, 8, 60))

    log = workbook.create_sheet("调整与请假记录")
    log.append(("时间", "课次", "学员", "操作人", "内容", "原因或说明"))
    session_ids = [session.id for session in series.sessions] or [-1]
    titles = {session.id: session.title for session in series.sessions}
    overrides = db.session.scalars(
        select(AttendanceOverride).where(AttendanceOverride.session_id.in_(session_ids))
    ).all()
    notes = db.session.scalars(
        select(ExcuseNote).where(ExcuseNote.session_id.in_(session_ids))
    ).all()
    came = set(
        db.session.scalars(
            select(AttendanceEvent.user_id)
            .where(AttendanceEvent.session_id.in_(session_ids))
            .distinct()
        )
    )
    # The names the log and the reconciliation show, and only those.
    wanted = {o.user_id for o in overrides} | {o.set_by_id for o in overrides}
    wanted |= {n.user_id for n in notes} | {n.decided_by_id for n in notes} | came
    names = dict(
        db.session.execute(
            select(User.id, User.display_name).where(User.id.in_(wanted - {None} or {-1}))
        ).all()
    )
    entries = []
    for override in overrides:
        what = status_name(override.status) if override.status else "按规则计算"
        entries.append(
            (
                override.set_at,
                override.session_id,
                override.user_id,
                names.get(override.set_by_id, ""),
                f"状态改为{what}",
                override.reason,
            )
        )
    for note in notes:
        decided = {None: "待处理", True: "已接受", False: "未接受"}[note.accepted]
        entries.append(
            (
                note.submitted_at,
                note.session_id,
                note.user_id,
                names.get(note.decided_by_id, ""),
                f"请假说明（{decided}）",
                note.text,
            )
        )
    for at, session_id, user_id, by, what, reason in sorted(entries, key=lambda e: e[0]):
        _text_row(log, (local_naive(at, tz), titles.get(session_id, ""), names.get(user_id, ""), by,
                        what, reason))  # fmt: skip
        log.cell(log.max_row, 1).number_format = "yyyy-mm-dd hh:mm"
    finish_sheet(log, (17, 16, 12, 12, 18, 60))

    check = workbook.create_sheet("报名与出勤核对")
    check.append(
        ("姓名", "单位", "是否报名", "应出席课次", "实出席课次", "缺勤或早退", "请假", "补学")
    )
    for user, unit in matrix.people:
        statuses = [matrix.cells[(user.id, s.id)].status for s in matrix.sessions]
        _text_row(check, (user.display_name, unit, "是", len(statuses),
                          sum(s in ATTENDED for s in statuses),
                          sum(s.value in ("absent", "left_early") for s in statuses),
                          sum(s.value == "excused" for s in statuses),
                          sum(s.value == "made_up" for s in statuses)))  # fmt: skip
    enrolled = {user.id for user, _unit in matrix.people}
    for user_id in sorted(came - enrolled):
        _text_row(
            check, (names.get(user_id, ""), "", "否（未报名却有进入记录）", 0, "", "", "", "")
        )
    finish_sheet(check, (12, 22, 22, 10, 10, 10, 8, 8))

    credits = workbook.create_sheet("学时")
    credits.append(
        ("姓名", "单位", "出席课次", "学时", f"规则：每 {series.credit_minutes} 分钟 1 学时")
    )
    for user, unit in matrix.people:
        _text_row(credits, (user.display_name, unit, matrix.attended(user.id),
                            credit_hours(matrix, user.id, series.credit_minutes)))  # fmt: skip
    finish_sheet(credits, (12, 22, 10, 8, 30))
    workbook.properties.title = f"{series.title} 结班材料"
    workbook.properties.created = now.replace(tzinfo=None)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _text_row(sheet, values) -> None:
    """Append a row; its text cells stay text (a name starting with = is not a formula)."""
    sheet.append(values)
    for cell in sheet[sheet.max_row][:TEXT_COLUMNS]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
