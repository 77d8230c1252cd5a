"""Participant sheets in and out: reading .xlsx and .csv files as a stream, within
bounds (columns, cell length, rows, unpacked size), and writing the template and the
log-in links workbook (cells that could be formulas are made text)."""

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator

import openpyxl
from flask_babel import gettext as _
from openpyxl.utils.exceptions import InvalidFileException

from webapp.errors import (
    InvalidInput,
)
from webapp.series.import_rows import COLUMNS, FORMULA, HEADER_ALIASES, TEMPLATE_HEADERS
from webapp.text import clean_line

# --- reading files --------------------------------------------------------------------------


# What an upload may cost, whatever it declares: a participant list needs few columns and
# short cells, so a sheet is read as a stream, only this far, and refused beyond.
MAX_COLUMNS = 30
MAX_CELL_CHARS = 300
MAX_BLANK_LINES = 1000  # blank lines skipped before the reading stops
HEADER_SEARCH_ROWS = 5  # rows looked at for the header (a title or a date line may come first)
MAX_UNPACKED_BYTES = 100 * 1024 * 1024  # an .xlsx is a zip: what its parts unpack to
MAX_STORED_CHARS = 2 * 1024 * 1024  # the text kept between preview and confirmation


def read_sheet(filename: str, data: bytes, *, max_rows: int) -> list[dict]:
    """Read the rows of an uploaded sheet as dicts with the COLUMNS keys and a line number."""
    return _rows_from_table(_table(filename, data), max_rows=max_rows)


def _table(filename: str, data: bytes) -> Iterator[list[str]]:
    """The cells of an uploaded .xlsx or .csv file, row by row."""
    if not data:
        raise InvalidInput(_("The file is empty."), field="sheet")
    if filename.lower().endswith(".xlsx"):
        return _xlsx_rows(data)
    if filename.lower().endswith(".csv"):
        return _csv_rows(data)
    raise InvalidInput(_("Only .xlsx and .csv files can be imported."), field="sheet")


def read_table(filename: str, data: bytes, *, max_rows: int) -> list[tuple[int, list[str]]]:
    """The non-blank lines of an uploaded sheet as (line number, cells), within the same
    limits as a participant list (size, rows, cell length, text in all): for sheets whose
    columns the caller finds itself, e.g. a meeting platform's export."""
    table = _table(filename, data)
    lines, stored, blank = [], 0, 0
    try:
        for number, cells in enumerate(table, start=1):
            if not any(cells):
                blank += 1
                if blank > MAX_BLANK_LINES:
                    break
                continue
            blank = 0
            if len(lines) > max_rows:
                raise InvalidInput(
                    _(
                        "The file has more than %(max)d rows. Split it into several files of "
                        "at most %(max)d rows each.",
                        max=max_rows,
                    ),
                    field="sheet",
                )
            stored += sum(len(cell) for cell in cells)
            if stored > MAX_STORED_CHARS:
                raise InvalidInput(_("The file holds far more text than expected; check it."),
                                   field="sheet")  # fmt: skip
            lines.append((number, list(cells)))
    except _CellTooLong as error:
        raise InvalidInput(
            _("A cell holds more than %(max)d characters. Check the file.", max=MAX_CELL_CHARS),
            field="sheet",
        ) from error
    if not lines:
        raise InvalidInput(_("The file is empty."), field="sheet")
    return lines


def _unreadable_workbook() -> InvalidInput:
    return InvalidInput(
        _("This file could not be read as an Excel workbook (.xlsx)."), field="sheet"
    )


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise _unreadable_workbook() from error
    if unpacked > MAX_UNPACKED_BYTES:
        raise InvalidInput(
            _(
                "This workbook unpacks to more than %(size)d MB; a participant list is far "
                "smaller. Save just the list in a new workbook.",
                size=MAX_UNPACKED_BYTES >> 20,
            ),
            field="sheet",
        )
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
        sheet = workbook.worksheets[0]
    except (
        InvalidFileException,
        zipfile.BadZipFile,
        KeyError,
        OSError,
        ValueError,
        IndexError,
    ) as error:
        raise _unreadable_workbook() from error
    # The sheet's declared size (its <dimension>) is not trusted: read-only mode would pad
    # every row to it. Only the rows that are there are read, each at most MAX_COLUMNS wide.
    sheet.reset_dimensions()

    def rows():
        try:
            for row in sheet.iter_rows(max_col=MAX_COLUMNS):
                yield [_cell_text(cell) for cell in row]
        except (KeyError, ValueError, TypeError, zipfile.BadZipFile, OSError) as error:
            raise _unreadable_workbook() from error
        finally:
            workbook.close()

    return rows()


def _cell_text(cell) -> str:
    value = cell.value
    if value is None:
        return ""
    if getattr(cell, "data_type", None) == "f" or (
        isinstance(value, str) and value.startswith("=")
    ):
        return FORMULA
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # phone numbers typed into number cells
    return _clean_cell(str(value))


def _clean_cell(value: str) -> str:
    """A cell as one line of clean text (Alt+Enter in Excel becomes a space)."""
    if len(value) > MAX_CELL_CHARS:
        raise _CellTooLong()
    return clean_line(value)


class _CellTooLong(Exception):
    pass


def _csv_rows(data: bytes) -> Iterable[list[str]]:
    text = _decode_csv(data)
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel

    def rows():
        reader = csv.reader(io.StringIO(text), dialect)
        try:
            for row in reader:
                yield [
                    FORMULA if cell.strip().startswith("=") else _clean_cell(cell)
                    for cell in row[:MAX_COLUMNS]
                ]
        except csv.Error as error:  # e.g. a field over the csv module's own limit
            if "field larger" in str(error):
                raise _CellTooLong() from error
            raise InvalidInput(
                _("This file could not be read as CSV (line %(line)d).", line=reader.line_num),
                field="sheet",
            ) from error

    return rows()


def _decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) or GBK/GB18030, as Chinese Excel saves CSV; a file that
    mixes the two is refused rather than imported with garbled names."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    kinds = set()
    lines = []
    for raw_line in data.splitlines(keepends=True):
        try:
            line = raw_line.decode("utf-8")
            if not raw_line.isascii():
                kinds.add("utf-8")
        except UnicodeDecodeError:
            try:
                line = raw_line.decode("gb18030")
            except UnicodeDecodeError as error:
                raise InvalidInput(
                    _(
                        "The file is neither UTF-8 nor GBK text. Save it as “CSV UTF-8” or as "
                        "an Excel workbook (.xlsx)."
                    ),
                    field="sheet",
                ) from error
            kinds.add("gbk")
        lines.append(line)
    if len(kinds) > 1:
        raise InvalidInput(
            _(
                "The file mixes two text encodings (UTF-8 and GBK), so some names would come "
                "out garbled. Save it again as “CSV UTF-8” or as an Excel workbook (.xlsx)."
            ),
            field="sheet",
        )
    return "".join(lines)


def _rows_from_table(table: Iterable[list[str]], *, max_rows: int) -> list[dict]:
    """The rows under the header, read as a stream: it stops at the row limit, at too many
    blank lines, at a cell over the length limit and at too much text in all."""
    try:
        return _read_rows(table, max_rows=max_rows)
    except _CellTooLong as error:
        raise InvalidInput(
            _(
                "A cell holds more than %(max)d characters; a name, mobile number, email "
                "address or unit is never that long. Check the file.",
                max=MAX_CELL_CHARS,
            ),
            field="sheet",
        ) from error


def _read_rows(table: Iterable[list[str]], *, max_rows: int) -> list[dict]:
    iterator = iter(table)
    header_map = None
    line = blank = tried = 0
    refusal = None
    for cells in iterator:
        line += 1
        if any(cells):
            # The header, or a title above it (参训人员名单, a date line): skipped.
            try:
                header_map = _header_map(cells)
                break
            except InvalidInput as error:
                refusal, tried = error, tried + 1
                if tried >= HEADER_SEARCH_ROWS:
                    raise
                continue
        blank += 1
        if blank > MAX_BLANK_LINES:
            break
    if header_map is None:
        raise refusal or InvalidInput(_("The file is empty."), field="sheet")
    rows = []
    stored = 0
    for cells in iterator:
        line += 1
        if not any(cell for cell in cells):
            blank += 1
            if blank > MAX_BLANK_LINES:
                break  # a sheet that goes on blank for this long has ended
            continue
        blank = 0
        if len(rows) >= max_rows:
            raise InvalidInput(
                _(
                    "The file has more than %(max)d rows. Split it into several files of at most "
                    "%(max)d rows each.",
                    max=max_rows,
                ),
                field="sheet",
            )
        row = {"line": line}
        for key in COLUMNS:
            index = header_map.get(key)
            if index is None and key == "title":
                continue  # kept only where the sheet has the column (older batches lack it)
            row[key] = cells[index] if index is not None and index < len(cells) else ""
            stored += len(row[key])
        if stored > MAX_STORED_CHARS:
            raise InvalidInput(
                _("The file holds far more text than a participant list; check it."),
                field="sheet",
            )
        rows.append(row)
    if not rows:
        raise InvalidInput(_("The file has a header row but no participants."), field="sheet")
    return rows


def _header_map(cells: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        label = cell.strip().lower().replace("*", "").strip()
        for key, aliases in HEADER_ALIASES.items():
            if label in aliases and key not in found:
                found[key] = index
    if "name" not in found or not ({"phone", "email"} & found.keys()):
        raise InvalidInput(
            _(
                "No row at the top names the columns: 姓名 (name), 手机号 (phone) and/or 邮箱 "
                "(email), optionally 单位 (unit), 职务 (position) and 角色 (role). Download the "
                "template to see."
            ),
            field="sheet",
        )
    return found


# --- spreadsheets out -----------------------------------------------------------------------


def template_workbook() -> bytes:
    """The sheet to fill in, with an example row and short instructions."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "学员名单"
    sheet.append(TEMPLATE_HEADERS)
    sheet.append(("王建国", "13800138000", "wang@example.org", "大瓦窑村", "村委会主任", "学员"))
    sheet.append(("李春梅", "13900139000", "", "大瓦窑村", "党支部书记", "联络员"))
    for column, width in zip("ABCDEF", (14, 16, 26, 22, 16, 10), strict=True):
        sheet.column_dimensions[column].width = width
    help_sheet = workbook.create_sheet("说明 Help")
    for line in (
        "每行一位学员。姓名必填；手机号和邮箱至少填一项；单位、职务、角色可不填。",
        "角色：学员（默认）或 联络员（可查看并确认本单位名单）。",
        "One participant per row. Name is required; a mobile number and/or an email address;",
        "unit, position (职务) and role are optional. Role: 学员 (participant, default) or 联络员",
        "(liaison). A title row above the header is fine.",
    ):
        help_sheet.append((line,))
    return _save(workbook)


def links_workbook(rows: list[tuple[str, str, str, str, str, str]]) -> bytes:
    """A sheet of (name, unit, title, mobile, email, log-in link) to hand out. Every cell
    is a text cell: a mobile number keeps its digits (no apostrophe shown, no 1.39E+10) and
    a name starting with = is never a formula."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "登录链接"
    sheet.append(("姓名", "单位", "职务", "手机号", "邮箱", "登录链接（一次有效，14天内）"))
    for values in rows:
        sheet.append(tuple(values))
        for cell in sheet[sheet.max_row]:
            cell.data_type = "s"  # text, whatever it starts with
            cell.number_format = "@"
    for column, width in zip("ABCDEF", (12, 20, 16, 16, 26, 90), strict=True):
        sheet.column_dimensions[column].width = width
    return _save(workbook)


def national_mobile(phone: str | None) -> str:
    """+8613910000001 → 13910000001, as people write it; other countries keep their +."""
    if not phone:
        return ""
    return phone[3:] if phone.startswith("+86") else phone


def _save(workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
