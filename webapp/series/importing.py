"""Importing participants from an Excel (.xlsx) or CSV sheet: parse, preview every row's
problems, then import all valid rows in one transaction."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
)
from webapp.people.identifiers import (
    normalise_email,
    normalise_phone,
)
from webapp.people.logins import (
    issue_login_token,
)
from webapp.people.models import Unit, UnitKind, User
from webapp.people.services import (
    create_user,
)
from webapp.people.units import (
    add_liaison,
    create_unit,
)
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    ImportBatch,
    Series,
)

COLUMNS = ("name", "phone", "email", "unit", "role")
# Header names as people write them in Chinese and English sheets.
HEADER_ALIASES = {
    "name": {"姓名", "名字", "学员姓名", "name", "full name"},
    "phone": {"手机", "手机号", "手机号码", "电话", "联系电话", "phone", "mobile", "mobile number"},
    "email": {"邮箱", "电子邮箱", "电子邮件", "email", "e-mail", "mail"},
    "unit": {"单位", "所在单位", "组织", "部门", "unit", "organisation", "organization"},
    "role": {"角色", "身份", "role"},
}
PARTICIPANT_ROLES = {"", "学员", "participant"}
LIAISON_ROLES = {"联络员", "liaison"}
TEMPLATE_HEADERS = ("姓名", "手机号", "邮箱", "单位", "角色")
FORMULA = "\0formula"  # marks a cell that held a formula


@dataclass
class RowResult:
    line: int
    name: str
    phone: str
    email: str
    unit: str
    role: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    user: User | None = None
    unit_obj: Unit | None = None
    creates_unit: bool = False
    is_liaison: bool = False
    already_enrolled: bool = False
    clean_phone: str | None = None
    clean_email: str | None = None
    outcome: str | None = None  # ENROL, WAITLIST or SKIP, once planned or imported

    @property
    def is_valid(self) -> bool:
        return not self.problems


ENROL, WAITLIST, SKIP = "enrol", "waitlist", "skip"


@dataclass
class Analysis:
    rows: list[RowResult]

    @property
    def valid(self) -> list[RowResult]:
        return [row for row in self.rows if row.is_valid]

    @property
    def invalid(self) -> list[RowResult]:
        return [row for row in self.rows if not row.is_valid]

    @property
    def units_to_create(self) -> list[str]:
        return sorted({row.unit for row in self.rows if row.creates_unit and row.is_valid})


@dataclass
class ImportResult:
    enrolled: int = 0
    waitlisted: int = 0
    skipped: int = 0
    created_users: list[User] = field(default_factory=list)
    created_units: list[str] = field(default_factory=list)
    rows: list[RowResult] = field(default_factory=list)


@dataclass(frozen=True)
class PreviewRow:
    """A row as the preview shows it: plain values, what is wrong, what will happen."""

    line: int
    name: str
    phone: str
    email: str
    unit: str
    role: str
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    outcome: str

    @property
    def is_valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Preview:
    rows: list[PreviewRow]
    units_to_create: list[str]

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)


# --- analysing rows -------------------------------------------------------------------------


def analyse(rows: list[dict], series: Series) -> Analysis:
    """Check every row against the rules and the database; writes nothing."""
    results = [
        RowResult(line=row["line"], **{key: row.get(key, "") for key in COLUMNS}) for row in rows
    ]
    for result in results:
        _check_cells(result)
    _match_accounts(results)
    _check_duplicates(results)
    _match_units(results)
    _mark_enrolled(results, series)
    return Analysis(results)


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


def _match_units(rows: list[RowResult]) -> None:
    names = sorted({row.unit for row in rows if row.unit})
    units_by_name: dict[str, list[Unit]] = {}
    for chunk in _chunks(names):
        for unit in db.session.scalars(select(Unit).where(Unit.name.in_(chunk))):
            units_by_name.setdefault(unit.name, []).append(unit)
    for row in rows:
        if not row.unit:
            continue
        matches = units_by_name.get(row.unit, [])
        if len(matches) == 1:
            row.unit_obj = matches[0]
        elif len(matches) > 1:
            row.problems.append(
                _("Several units are called “%(unit)s”; rename one of them first.", unit=row.unit)
            )
        else:
            row.creates_unit = True


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


# --- batches --------------------------------------------------------------------------------


def store_batch(
    series: Series, filename: str, rows: list[dict], *, by: User, now: datetime
) -> ImportBatch:
    """Keep the parsed rows between preview and confirmation (any web process can confirm)."""
    batch = ImportBatch(
        series_id=series.id, created_by_id=by.id, filename=filename[:255], rows=rows, created_at=now
    )
    db.session.add(batch)
    db.session.flush()
    return batch


def confirm_import(
    batch: ImportBatch,
    series: Series,
    *,
    create_units: bool,
    parent_unit: Unit | None,
    now: datetime,
) -> ImportResult:
    """Import every valid row: create missing units and accounts, enrol, make liaisons.

    Runs in the caller's transaction, so a failure leaves nothing half-imported."""
    if batch.confirmed_at is not None:
        raise Conflict(_("This file has already been imported."))
    analysis = analyse(batch.rows, series)
    if not create_units:
        for row in analysis.rows:
            if row.creates_unit and row.is_valid:
                row.problems.append(_("Unknown unit “%(unit)s”.", unit=row.unit))
    result = ImportResult(rows=analysis.rows)
    new_units: dict[str, Unit] = {}
    for row in analysis.rows:
        if not row.is_valid or row.already_enrolled:
            row.outcome = SKIP
            result.skipped += 1
            continue
        unit = row.unit_obj
        if row.creates_unit:
            if row.unit not in new_units:
                new_units[row.unit] = create_unit(row.unit, UnitKind.OTHER, parent_unit)
                result.created_units.append(row.unit)
            unit = new_units[row.unit]
            row.notes.append(_("New unit “%(unit)s” will be created.", unit=row.unit))
        user = row.user
        if user is None:
            user = create_user(
                display_name=row.name, email=row.clean_email, phone=row.clean_phone, unit=unit
            )
            result.created_users.append(user)
        elif user.unit_id is None and unit is not None:
            user.unit = unit
            row.notes.append(_("Their unit will be set to “%(unit)s”.", unit=unit.name))
        elif unit is not None and user.unit_id != unit.id:
            row.notes.append(
                _("Stays in their own unit “%(unit)s”.", unit=user.unit.name if user.unit else "")
            )
        if row.is_liaison and unit is not None:
            add_liaison(unit, user)
            row.notes.append(_("Becomes liaison of “%(unit)s”.", unit=unit.name))
        enrollment = enroll(user, series, source=EnrollmentSource.IMPORT, now=now)
        if enrollment.status == EnrollmentStatus.WAITLISTED:
            row.outcome = WAITLIST
            row.notes.append(_("No seat is free: will wait for one."))
            result.waitlisted += 1
        else:
            row.outcome = ENROL
            result.enrolled += 1
    batch.confirmed_at = now
    batch.created_user_ids = [user.id for user in result.created_users]
    db.session.flush()
    return result


def preview_import(
    batch: ImportBatch,
    series: Series,
    *,
    create_units: bool,
    parent_unit: Unit | None,
    now: datetime,
) -> Preview:
    """What confirming would do to every row, found by doing it in a savepoint and rolling
    it back, so the preview and the import can never disagree (seats, quotas, units)."""
    units_to_create = analyse(batch.rows, series).units_to_create
    feed_changes = db.session.info.get("feed_changes")
    savepoint = db.session.begin_nested()
    try:
        result = confirm_import(
            batch, series, create_units=create_units, parent_unit=parent_unit, now=now
        )
        rows = [
            PreviewRow(
                line=row.line,
                name=row.name,
                phone=row.phone,
                email=row.email,
                unit=row.unit,
                role=row.role,
                problems=tuple(row.problems),
                notes=tuple(row.notes),
                outcome=row.outcome or SKIP,
            )
            for row in result.rows
        ]
    finally:
        savepoint.rollback()
        # Nothing was written: the feeds the dry run touched are not stale.
        if feed_changes is None:
            db.session.info.pop("feed_changes", None)
        else:
            db.session.info["feed_changes"] = feed_changes
    return Preview(rows=rows, units_to_create=units_to_create)


def login_links_for_batch(batch: ImportBatch, *, now: datetime) -> list[tuple[User, str]]:
    """Fresh log-in link tokens for the accounts an import created and that have not logged
    in yet (earlier unused links stop working)."""
    users = db.session.scalars(
        select(User).where(User.id.in_(batch.created_user_ids or [-1])).order_by(User.id)
    ).all()
    return [
        (user, issue_login_token(user, now=now))
        for user in users
        if user.last_login_at is None and user.password_hash is None
    ]
