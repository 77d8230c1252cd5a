"""One row of a participant sheet and what importing it would do: the columns a sheet may
have, the checks of each row (name, phone, email, unit, role), the accounts and units it
matches, duplicates and people already enrolled."""

import difflib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.db import db
from webapp.errors import (
    InvalidInput,
)
from webapp.people.identifiers import (
    normalise_email,
    normalise_phone,
)
from webapp.people.models import Unit, User
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
)
from webapp.text import natural_key

COLUMNS = ("name", "phone", "email", "unit", "role", "title")


# Header names as people write them in Chinese and English sheets.
HEADER_ALIASES = {
    "name": {"姓名", "名字", "学员姓名", "name", "full name"},
    "phone": {"手机", "手机号", "手机号码", "电话", "联系电话", "phone", "mobile", "mobile number"},
    "email": {"邮箱", "电子邮箱", "电子邮件", "email", "e-mail", "mail"},
    "unit": {"单位", "所在单位", "组织", "部门", "unit", "organisation", "organization"},
    "role": {"角色", "身份", "role"},
    "title": {"职务", "职称", "职位", "title", "job title", "position"},
}


PARTICIPANT_ROLES = {"", "学员", "participant"}


LIAISON_ROLES = {"联络员", "liaison"}


TEMPLATE_HEADERS = ("姓名", "手机号", "邮箱", "单位", "职务", "角色")


FORMULA = "\0formula"  # marks a cell that held a formula


@dataclass
class RowResult:
    line: int
    name: str
    phone: str
    email: str
    unit: str
    role: str
    title: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    user: User | None = None
    unit_obj: Unit | None = None
    creates_unit: bool = False  # the unit is not known by that name: the organizer decides
    is_liaison: bool = False
    already_enrolled: bool = False
    clean_phone: str | None = None
    clean_email: str | None = None
    outcome: str | None = None  # ENROL, WAITLIST or SKIP, once planned or imported

    @property
    def is_valid(self) -> bool:
        return not self.problems


@dataclass
class Analysis:
    rows: list[RowResult]

    @property
    def valid(self) -> list[RowResult]:
        return [row for row in self.rows if row.is_valid]

    @property
    def invalid(self) -> list[RowResult]:
        return [row for row in self.rows if not row.is_valid]

    # Each unit name the sheet has and no unit is called: the units it may mean, the most
    # likely first (the first is a sure match when its name differs only in the ways people
    # write it: 村委会, full-width letters, spaces).
    suggestions: dict[str, list[Unit]] = field(default_factory=dict)
    sure: dict[str, Unit] = field(default_factory=dict)

    @property
    def units_to_create(self) -> list[str]:
        return sorted({row.unit for row in self.rows if row.creates_unit and row.is_valid})

    @property
    def unknown_units(self) -> list[str]:
        return sorted({row.unit for row in self.rows if row.creates_unit}, key=natural_key)


def analyse(rows: list[dict], series: Series) -> Analysis:
    """Check every row against the rules and the database; writes nothing."""
    results = [
        RowResult(line=row["line"], **{key: row.get(key, "") for key in COLUMNS}) for row in rows
    ]
    for result in results:
        _check_cells(result)
    _match_accounts(results)
    _check_duplicates(results)
    suggestions, sure = _match_units(results)
    _mark_enrolled(results, series)
    return Analysis(results, suggestions, sure)


def _check_cells(row: RowResult) -> None:
    if FORMULA in (row.name, row.phone, row.email, row.unit, row.role):
        row.problems.append(_("A cell holds a formula; type the value itself."))
        row.name, row.phone, row.email, row.unit, row.role = (
            "" if value == FORMULA else value
            for value in (row.name, row.phone, row.email, row.unit, row.role)
        )
        return
    if not row.name:
        row.problems.append(_("The name is missing."))
    elif len(row.name) > 100:
        row.problems.append(_("The name is longer than 100 characters."))
    if not row.phone and not row.email:
        row.problems.append(_("Give a mobile number or an email address."))
    if row.phone:
        try:
            row.clean_phone = normalise_phone(row.phone)
        except InvalidInput as error:
            row.problems.append(error.message)
    if row.email:
        try:
            row.clean_email = normalise_email(row.email)
        except InvalidInput as error:
            row.problems.append(error.message)
    role = row.role.strip().lower()
    if role in LIAISON_ROLES:
        row.is_liaison = True
        if not row.unit:
            row.problems.append(_("A liaison needs a unit: fill in the unit column."))
    elif role not in PARTICIPANT_ROLES:
        row.problems.append(_("Unknown role “%(role)s”: use 学员 or 联络员.", role=row.role))


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _match_accounts(rows: list[RowResult]) -> None:
    emails = sorted({row.clean_email for row in rows if row.clean_email})
    phones = sorted({row.clean_phone for row in rows if row.clean_phone})
    by_email: dict[str, User] = {}
    by_phone: dict[str, User] = {}
    for chunk in _chunks(emails):
        by_email.update(
            (user.email, user)
            for user in db.session.scalars(select(User).where(User.email.in_(chunk)))
        )
    for chunk in _chunks(phones):
        by_phone.update(
            (user.phone, user)
            for user in db.session.scalars(select(User).where(User.phone.in_(chunk)))
        )
    for row in rows:
        email_user = by_email.get(row.clean_email) if row.clean_email else None
        phone_user = by_phone.get(row.clean_phone) if row.clean_phone else None
        if email_user and phone_user and email_user.id != phone_user.id:
            row.problems.append(
                _(
                    "The email address belongs to %(a)s but the mobile number to %(b)s.",
                    a=email_user.display_name,
                    b=phone_user.display_name,
                )
            )
            continue
        row.user = email_user or phone_user
        if row.user is not None:
            row.notes.append(_("Existing account: %(name)s", name=row.user.display_name))
            if not row.user.is_active:
                row.problems.append(_("This account is deactivated."))


def _check_duplicates(rows: list[RowResult]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        for key in (row.clean_email, row.clean_phone):
            if key is None:
                continue
            if key in seen:
                row.problems.append(_("Same person as row %(line)d.", line=seen[key]))
                break
        for key in (row.clean_email, row.clean_phone):
            if key is not None:
                seen.setdefault(key, row.line)


def _match_units(rows: list[RowResult]) -> tuple[dict[str, list[Unit]], dict[str, Unit]]:
    """Rows get the unit called exactly so; for the other names, the units they may mean."""
    names = sorted({row.unit for row in rows if row.unit})
    units_by_name: dict[str, list[Unit]] = {}
    inactive: set[str] = set()
    for chunk in _chunks(names):
        for unit in db.session.scalars(select(Unit).where(Unit.name.in_(chunk))):
            if unit.is_active:
                units_by_name.setdefault(unit.name, []).append(unit)
            else:
                inactive.add(unit.name)
    for row in rows:
        if not row.unit:
            continue
        matches = units_by_name.get(row.unit, [])
        if not matches and row.unit in inactive:
            row.problems.append(
                _("The unit “%(unit)s” is deactivated; an admin can reactivate it.", unit=row.unit)
            )
        elif len(matches) == 1:
            row.unit_obj = matches[0]
        elif len(matches) > 1:
            row.problems.append(
                _("Several units are called “%(unit)s”; rename one of them first.", unit=row.unit)
            )
        else:
            row.creates_unit = True
    unknown = sorted({row.unit for row in rows if row.creates_unit})
    if not unknown:
        return {}, {}
    by_key: dict[str, list[Unit]] = {}
    for unit in db.session.scalars(select(Unit).where(Unit.is_active.is_(True))):
        by_key.setdefault(unit_key(unit.name), []).append(unit)
    suggestions, sure = {}, {}
    for name in unknown:
        key = unit_key(name)
        same = by_key.get(key, [])
        close = difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.6)
        found = [*same, *(u for k in close if k != key for u in by_key[k])]
        suggestions[name] = found
        if len(same) == 1:
            sure[name] = same[0]
    return suggestions, sure


# A unit's name as people write it in many ways: 大瓦窑村委会 for 大瓦窑村, 万泉寺社区居委会 or
# 万泉寺居委会 for 万泉寺社区, full-width letters and digits, spaces.
_VILLAGE_SUFFIXES = ("村民委员会", "村委会")
_COMMUNITY_SUFFIXES = ("社区居民委员会", "社区居委会", "居民委员会", "居委会", "社区")


def unit_key(name: str) -> str:
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", name))
    for suffix in _VILLAGE_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)] + "村"
    for suffix in _COMMUNITY_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            return text[: -len(suffix)]
    return text


def _mark_enrolled(rows: list[RowResult], series: Series) -> None:
    user_ids = [row.user.id for row in rows if row.user is not None]
    enrolled = set()
    for start in range(0, len(user_ids), 500):
        enrolled.update(
            db.session.scalars(
                select(Enrollment.user_id).where(
                    Enrollment.series_id == series.id,
                    Enrollment.user_id.in_(user_ids[start : start + 500]),
                    Enrollment.status != EnrollmentStatus.CANCELLED,
                )
            )
        )
    for row in rows:
        if row.user is not None and row.user.id in enrolled:
            row.already_enrolled = True
            row.notes.append(_("Already enrolled; will be skipped."))
