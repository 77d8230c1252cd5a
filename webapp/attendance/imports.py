"""Sessions held on another platform count too: the platform's participant export (Tencent
Meeting, DingTalk live, Zoom; CSV or XLSX) is read through a column mapping (presets where
the platform documents its export, each column editable), previewed, matched to enrolled
participants (mobile number first, then name and unit, then a unique name) with unmatched
rows left for the organizer to match by hand, and written as `import` attendance events
that go through the same rules."""

import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from webapp import audit
from webapp.db import db
from webapp.people.identifiers import normalise_phone
from webapp.people.models import Unit, User
from webapp.series.models import Enrollment, EnrollmentStatus
from webapp.sessions.models import (
    AttendanceEvent,
    AttendanceKind,
    AttendanceSource,
    LectureSession,
)
from webapp.zones import zone

ROLES = ("name", "phone", "unit", "join", "leave", "duration")
MAX_ROWS = 20000


@dataclass(frozen=True)
class Preset:
    label: object
    columns: dict[str, tuple[str, ...]]  # role → header names it may have


PRESETS = {
    "tencent_meeting": Preset(
        _l("Tencent Meeting (腾讯会议) participant list"),
        {
            "name": ("用户昵称", "参会者", "参会人", "姓名", "昵称"),
            "phone": ("手机号", "手机号码", "电话"),
            "unit": ("部门", "单位", "企业/部门"),
            "join": ("入会时间", "首次入会时间"),
            "leave": ("退会时间", "离会时间", "最后退会时间"),
            "duration": ("参会时长", "参会时长(分钟)", "参会时长（分钟）"),
        },
    ),
    "dingtalk_live": Preset(
        _l("DingTalk live (钉钉直播) viewer statistics"),
        {
            "name": ("姓名", "观众", "用户名"),
            "phone": ("手机号", "手机号码"),
            "unit": ("部门", "所属部门", "单位"),
            "join": ("首次观看时间", "开始观看时间", "进入时间"),
            "leave": ("最后观看时间", "离开时间"),
            "duration": ("观看时长", "观看时长(分钟)", "观看时长（分钟）", "直播观看时长"),
        },
    ),
    "zoom": Preset(
        _l("Zoom participant report"),
        {
            "name": ("Name (Original Name)", "Name", "Participant"),
            "phone": ("Phone",),
            "unit": ("Department",),
            "join": ("Join Time", "Join time"),
            "leave": ("Leave Time", "Leave time"),
            "duration": ("Duration (Minutes)", "Duration (minutes)", "Duration"),
        },
    ),
}

TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M",
    "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
    "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M",
)  # fmt: skip
CLOCK_FORMATS = ("%H:%M:%S", "%H:%M")
DURATION = re.compile(
    r"^\s*(?:(?P<h>\d{1,3})\s*(?:小时|时|h|hr|hours?)\s*)?(?:(?P<m>\d{1,4})\s*(?:分钟|分|m|min|minutes?)\s*)?"
    r"(?:(?P<s>\d{1,5})\s*(?:秒|s|sec|seconds?)\s*)?$",
    re.IGNORECASE,
)


def parse_time(text: str, session: LectureSession) -> datetime | None:
    """A time as the platform wrote it, in the series' zone; a bare clock time is on the
    session's day. None when it is not a time."""
    text = text.strip()
    if not text or len(text) > 40:
        return None
    tz = zone(session.series.timezone)
    for pattern in TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=tz)
        except ValueError:
            continue
    day: date = session.starts_at.astimezone(tz).date()
    for pattern in CLOCK_FORMATS:
        try:
            clock: time = datetime.strptime(text, pattern).time()
        except ValueError:
            continue
        return datetime.combine(day, clock, tzinfo=tz)
    return None


def parse_minutes(text: str) -> float | None:
    """65 / 65.5 / 01:05:00 / 1小时5分钟 / 65分钟 / 1h 5m → minutes; None otherwise."""
    text = text.strip()
    if not text or len(text) > 30:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if 0 <= value < 100000 else None
    if re.fullmatch(r"\d{1,3}:\d{2}(:\d{2})?", text):
        parts = [int(part) for part in text.split(":")]
        hours, minutes, seconds = (parts + [0])[:3] if len(parts) == 3 else (0, *parts)
        return hours * 60 + minutes + seconds / 60
    match = DURATION.match(text)
    if match and any(match.groupdict().values()):
        return int(match["h"] or 0) * 60 + int(match["m"] or 0) + int(match["s"] or 0) / 60
    return None


@dataclass
class ImportRow:
    line: int
    name: str
    phone: str
    unit: str
    join: str | None = None  # ISO times once read
    leave: str | None = None
    minutes: float | None = None
    user_id: int | None = None
    matched_by: str = ""  # phone, name and unit, name, hand
    problems: list[str] = field(default_factory=list)


def find_columns(lines, columns: dict[str, tuple[str, ...]]) -> tuple[int, dict[str, int]]:
    """The header row (the first of the first ten rows naming a name column, so a title row
    above it is fine) and where each role's column is."""
    for position, (_number, cells) in enumerate(lines[:10]):
        found = {}
        headers = [cell.strip() for cell in cells]
        for role, names in columns.items():
            for index, header in enumerate(headers):
                if header and header in names:
                    found[role] = index
                    break
        if "name" in found and ({"join", "duration"} & set(found)):
            return position, found
    return -1, {}


def read_rows(lines, columns, session: LectureSession) -> list[ImportRow]:
    position, found = find_columns(lines, columns)
    if position < 0:
        return []
    rows = []
    for number, cells in lines[position + 1 :]:

        def cell(role, cells=cells):
            index = found.get(role)
            return cells[index].strip() if index is not None and index < len(cells) else ""

        row = ImportRow(line=number, name=cell("name")[:100], phone=cell("phone")[:40],
                        unit=cell("unit")[:200])  # fmt: skip
        join, leave = parse_time(cell("join"), session), parse_time(cell("leave"), session)
        minutes = parse_minutes(cell("duration"))
        if join and leave and leave < join:
            row.problems.append(str(_l("leaves before joining")))
        elif join:
            row.join = join.isoformat()
            row.leave = (leave or (join + timedelta(minutes=minutes or 0))).isoformat()
        elif minutes is not None:
            row.minutes = minutes
        else:
            row.problems.append(str(_l("no join time and no duration")))
        if not row.name and not row.phone:
            row.problems.append(str(_l("no name and no mobile number")))
        rows.append(row)
    return rows


def match(rows: list[ImportRow], session: LectureSession) -> None:
    """Enrolled participants by mobile number, then name and unit, then a unique name."""
    people = db.session.execute(
        select(User, Unit.name)
        .join(Enrollment, Enrollment.user_id == User.id)
        .outerjoin(Unit, Unit.id == User.unit_id)
        .where(
            Enrollment.series_id == session.series_id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
        )
    ).all()
    by_phone = {user.phone: user for user, _unit in people if user.phone}
    by_name_unit = {(user.display_name, unit or ""): user for user, unit in people}
    by_name: dict[str, list[User]] = {}
    for user, _unit in people:
        by_name.setdefault(user.display_name, []).append(user)
    for row in rows:
        if row.problems:
            continue
        phone = _phone(row.phone)
        if phone and phone in by_phone:
            row.user_id, row.matched_by = by_phone[phone].id, "phone"
        elif row.unit and (row.name, row.unit) in by_name_unit:
            row.user_id, row.matched_by = by_name_unit[(row.name, row.unit)].id, "name and unit"
        elif len(by_name.get(row.name, [])) == 1:
            row.user_id, row.matched_by = by_name[row.name][0].id, "name"


def match_by_hand(rows: list[ImportRow], choices: dict[int, int | None], *, allowed) -> None:
    """The organizer's choices for rows left unmatched (line → participant id), only among
    the enrolled (`allowed`)."""
    for row in rows:
        chosen = choices.get(row.line)
        if row.user_id is None and not row.problems and chosen in allowed:
            row.user_id, row.matched_by = chosen, "hand"


def _phone(raw: str) -> str | None:
    try:
        return normalise_phone(raw) if raw else None
    except ValueError:
        return None


def apply(rows: list[ImportRow], session: LectureSession, *, now: datetime) -> int:
    """Write each matched row as an imported join and leave (a duration alone is placed at
    the session's start); returns how many participants got time."""
    events = []
    for row in rows:
        if row.user_id is None or row.problems:
            continue
        if row.join:
            join, leave = datetime.fromisoformat(row.join), datetime.fromisoformat(row.leave)
        else:
            join = session.starts_at
            leave = join + timedelta(minutes=row.minutes or 0)
        for kind, at in ((AttendanceKind.JOIN, join), (AttendanceKind.LEAVE, leave)):
            events.append(
                dict(
                    session_id=session.id,
                    user_id=row.user_id,
                    source=AttendanceSource.IMPORT,
                    kind=kind,
                    at=at,
                )  # fmt: skip
            )
    people = len({event["user_id"] for event in events})
    if events:
        db.session.execute(db.insert(AttendanceEvent), events)
    audit.record(
        "import.attendance",
        object_type="session",
        object_id=session.id,
        label=f"{session.series.title} · {session.title}",
        series_id=session.series_id,
        details={"rows": len(rows), "participants": people},
        now=now,
    )
    return people


def rows_to_json(rows: list[ImportRow]) -> list[dict]:
    return [asdict(row) for row in rows]


def rows_from_json(data: list[dict]) -> list[ImportRow]:
    return [ImportRow(**row) for row in data]
