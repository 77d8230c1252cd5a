"""Text from users, cleaned once at the boundary.

Two kinds of field: single-line (titles, names, units, places, addresses) and multi-line
(descriptions, biographies, reasons). Both lose NUL and every other control character and
lone surrogate (PostgreSQL, email headers, iCalendar and XLSX refuse them); a single-line
field also turns line breaks and tabs into one space, so a title pasted from Excel
(Alt+Enter) can never start a new email header or iCalendar line. Bidirectional overrides
are dropped from single-line fields, so a name cannot display reversed.

The same two functions serve forms (as WTForms filters), imports, the CLI and services;
the column types below apply them again whenever a value is assigned to a model or bound
to a statement, so no path around the forms stores raw text."""

import re
import unicodedata

from sqlalchemy import String, Text
from sqlalchemy.types import TypeDecorator

# Characters that end a line somewhere: CR, LF, VT, FF, the file/group/record separators
# that str.splitlines() honours, NEL, and Unicode's line and paragraph separators.
LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SPACES = re.compile(r" {2,}")
_NEWLINES = re.compile(r"\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _dropped(char: str) -> bool:
    # Cc: control characters; Cs: lone surrogates (not encodable as UTF-8);
    # U+FFFE/U+FFFF: noncharacters that XML (and so XLSX) refuses.
    return unicodedata.category(char) in ("Cc", "Cs") or char in "\ufffe\uffff"


def clean_line(value: str | None) -> str | None:
    """One line of text: breaks and tabs become a space, other controls are dropped."""
    if value is None:
        return None
    value = str(value)
    if value.isprintable() and "  " not in value and value == value.strip():
        return value  # the common case: nothing to clean
    out = []
    for char in value:
        if char in LINE_BREAKS or char == "\t":
            out.append(" ")
        elif _dropped(char) or char in BIDI_CONTROLS:
            continue
        else:
            out.append(char)
    return _SPACES.sub(" ", "".join(out)).strip()


def clean_text(value: str | None) -> str | None:
    """Several lines of text: line breaks become \\n, tabs stay, other controls are dropped."""
    if value is None:
        return None
    value = _NEWLINES.sub("\n", str(value))
    return "".join(c for c in value if c in "\n\t" or not _dropped(c)).strip()


class LineText(TypeDecorator[str]):
    """A single-line text column: values are cleaned with clean_line()."""

    impl = String
    cache_ok = True
    cleaner = staticmethod(clean_line)

    def process_bind_param(self, value, dialect):
        return clean_line(value)


class ParagraphText(TypeDecorator[str]):
    """A multi-line text column: values are cleaned with clean_text()."""

    impl = Text
    cache_ok = True
    cleaner = staticmethod(clean_text)

    def process_bind_param(self, value, dialect):
        return clean_text(value)


# --- natural order ---------------------------------------------------------------------------

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
           "七": 7, "八": 8, "九": 9}  # fmt: skip
_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMBER = re.compile(r"(\d+|[零〇一二两三四五六七八九十百千]+)")


def chinese_number(text: str) -> int:
    """一 → 1, 十 → 10, 十二 → 12, 二十 → 20, 一百零五 → 105, 三〇 → 30 (digit by digit)."""
    if not any(ch in _UNITS for ch in text):
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, digit = 0, None
    for ch in text:
        if ch in _UNITS:
            total += (1 if digit is None else digit) * _UNITS[ch]
            digit = None
        else:
            digit = _DIGITS[ch]
    return total + (digit or 0)


def natural_key(text: str) -> tuple:
    """Sort key putting 第二 before 第十 and 2 before 10 (numbers, Arabic or Chinese, by
    value; the rest as text)."""
    parts = []
    for index, part in enumerate(_NUMBER.split(text or "")):
        if index % 2:
            parts.append((0, int(part) if part.isdigit() else chinese_number(part), ""))
        elif part:
            parts.append((1, 0, part))
    return tuple(parts)
