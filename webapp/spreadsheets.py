"""CSV and XLSX downloads that are safe on their own: CSV in UTF-8 with a BOM (so Excel
opens Chinese correctly), text that could be a formula never becomes one in either, a bold
frozen header row and column widths in XLSX."""

import csv
import io
from urllib.parse import quote

import openpyxl
from flask import Response
from openpyxl.styles import Font

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return safe_text(value)
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    return value


def csv_bytes(headers, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def append_row(sheet, values) -> None:
    """One row, its text kept as text whatever it starts with, its times formatted."""
    sheet.append(list(values))
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
        elif cell.is_date:
            cell.number_format = "yyyy-mm-dd hh:mm"


def finish_sheet(sheet, widths) -> None:
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[openpyxl.utils.get_column_letter(index)].width = width


def xlsx_bytes(sheet_title: str, headers, rows, widths, *, title: str = "") -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = sheet_title
    sheet.append(list(headers))
    for row in rows:
        append_row(sheet, row)
    finish_sheet(sheet, widths)
    workbook.properties.title = title
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def download(data: bytes, mimetype: str, name: str, *, inline: bool = False) -> Response:
    """A file to save (or, inline, to show), named in any language (RFC 6266)."""
    response = Response(data, mimetype=mimetype)
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name)}"
    return response
