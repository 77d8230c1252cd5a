"""The sign-in sheets (签到表) of a class as a printable PDF: one sheet per session (A4,
as many pages as its list needs, the header row repeated on each), with the lecturers, the
minutes present and the status of every participant and an empty column to sign in.

The text is set in Adobe's STSong-Light, a CID font every PDF reader has for Chinese, so
the file carries no font and stays small. Every text that users typed goes into a
paragraph escaped (a name with "<b>" is printed as it is)."""

import io
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from webapp.attendance.closing import speakers_line
from webapp.attendance.explain import status_name
from webapp.attendance.exports import local_naive
from webapp.attendance.reports import SeriesMatrix
from webapp.series.models import Series
from webapp.series.sheets import national_mobile

FONT = "STSong-Light"
HEADERS = ("序号", "姓名", "单位", "手机号", "首次进入", "最后离开", "在线分钟", "状态", "签名")
WIDTHS_MM = (10, 22, 36, 24, 15, 15, 14, 16, 28)  # 180 mm: A4 less 15 mm margins

pdfmetrics.registerFont(UnicodeCIDFont(FONT))
TITLE = ParagraphStyle("title", fontName=FONT, fontSize=14, leading=20, spaceAfter=2 * mm)
LINE = ParagraphStyle("line", fontName=FONT, fontSize=9, leading=13)
CELL = ParagraphStyle("cell", fontName=FONT, fontSize=8.5, leading=11)


def _bmp(value: str) -> str:
    # Only characters of the BMP: STSong-Light's encoding (UCS-2) has no others; they are
    # printed as a box, never a broken file. The middle dot of names such as 阿依古丽·买买提
    # is set as the full-width one, which every Chinese font has.
    value = value.replace("\u00b7", "\u30fb")
    return "".join(ch if ord(ch) <= 0xFFFF else "□" for ch in value)


def _text(value: str, style=CELL) -> Paragraph:
    return Paragraph(escape(_bmp(value)), style)


def _time(moment, tz_name: str) -> str:
    return f"{local_naive(moment, tz_name):%H:%M}" if moment else ""


def signin_pdf(series: Series, matrix: SeriesMatrix, *, now: datetime) -> bytes:
    tz = series.timezone
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=f"{series.title} 签到表",
        author="Yunketang",
        creator="Yunketang",
    )
    printed = f"{local_naive(now, tz):%Y-%m-%d %H:%M}"

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 8)
        canvas.drawString(15 * mm, 10 * mm, _bmp(f"{series.title[:60]}　签到表　打印于 {printed}"))
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"第 {doc.page} 页")
        canvas.restoreState()

    story: list = []
    for number, session in enumerate(matrix.sessions, start=1):
        if number > 1:
            story.append(PageBreak())
        start, end = local_naive(session.starts_at, tz), local_naive(session.ends_at, tz)
        story.append(_text(f"签到表（第 {number} 讲）　{series.title}", TITLE))
        story.append(_text(f"课次：{session.title}", LINE))
        story.append(_text(f"时间：{start:%Y-%m-%d %H:%M}–{end:%H:%M}（{tz}）", LINE))
        for lecture in session.lectures:
            speakers = speakers_line(lecture)
            story.append(
                _text(f"专题：{lecture.title}" + (f"　主讲：{speakers}" if speakers else ""), LINE)
            )
        story.append(Spacer(1, 3 * mm))
        rows: list[list] = [list(HEADERS)]
        for index, (user, unit) in enumerate(matrix.people, start=1):
            cell = matrix.cells[(user.id, session.id)]
            record = cell.record
            rows.append(
                [
                    str(index),
                    _text(user.display_name),
                    _text(unit),
                    national_mobile(user.phone),
                    _time(record.first_join, tz),
                    _time(record.last_leave, tz),
                    str(record.minutes),
                    status_name(cell.status),
                    "",
                ]
            )
        if len(rows) == 1:
            rows.append(["", _text("（无报名学员）"), "", "", "", "", "", "", ""])
        table = Table(rows, colWidths=[w * mm for w in WIDTHS_MM], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), FONT),
                    ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEEEEE")),
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#666666")),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                    ("ALIGN", (0, 0), (0, -1), "CENTER"),
                    ("ALIGN", (4, 0), (7, -1), "CENTER"),
                    ("TOPPADDING", (0, 1), (-1, -1), 5),
                    ("BOTTOMPADDING", (0, 1), (-1, -1), 5),
                ]
            )
        )
        story.append(table)
    if not matrix.sessions:
        story.append(_text(f"{series.title}　签到表", TITLE))
        story.append(_text("还没有已开始的课次。", LINE))
    document.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
