"""Importing participants from an Excel (.xlsx) or CSV sheet: store the parsed rows, preview
exactly what importing does (the import itself, rolled back), then import all valid rows in
one transaction and hand out log-in links for the new accounts."""

from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from webapp import audit
from webapp.db import db
from webapp.errors import (
    Conflict,
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
from webapp.series.import_rows import RowResult, analyse
from webapp.series.models import (
    EnrollmentSource,
    EnrollmentStatus,
    ImportBatch,
    Series,
)

ENROL, WAITLIST, SKIP = "enrol", "waitlist", "skip"


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
    title: str
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    outcome: str

    @property
    def is_valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class UnitChoice:
    """What a unit name the sheet has, and no unit is called, stands for: an existing unit,
    or a new one under a parent (None: at the top of the tree). Neither: not decided yet."""

    existing: Unit | None = None
    create: bool = False
    parent: Unit | None = None


@dataclass(frozen=True)
class UnknownUnit:
    name: str
    rows: int
    suggestions: list[Unit]  # the units it may mean, the likeliest first
    choice: UnitChoice


@dataclass(frozen=True)
class Preview:
    rows: list[PreviewRow]
    unknown_units: list[UnknownUnit]

    def count(self, outcome: str) -> int:
        return sum(1 for row in self.rows if row.outcome == outcome)


# --- analysing rows -------------------------------------------------------------------------


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


def unit_choices(analysis, chosen: dict[str, UnitChoice] | None) -> dict[str, UnitChoice]:
    """The organizer's choices for the unknown unit names; where they have not chosen, a
    sure match (大瓦窑村委会 → 大瓦窑村) is taken, and nothing else."""
    choices = {name: UnitChoice(existing=unit) for name, unit in analysis.sure.items()}
    choices.update(chosen or {})
    return choices


def unknown_unit_names(batch: ImportBatch, series: Series) -> list[str]:
    """The unit names of the sheet that no unit is called, in the order the preview lists them."""
    return analyse(batch.rows, series).unknown_units


def confirm_import(
    batch: ImportBatch,
    series: Series,
    *,
    units: dict[str, UnitChoice] | None = None,
    now: datetime,
) -> ImportResult:
    """Import every valid row: map or create units as chosen, create accounts, enrol, make
    liaisons. A row whose unit is unknown and not decided is skipped and says why.

    Runs in the caller's transaction, so a failure leaves nothing half-imported."""
    if batch.confirmed_at is not None:
        raise Conflict(_("This file has already been imported."))
    analysis = analyse(batch.rows, series)
    choices = unit_choices(analysis, units)
    for row in analysis.rows:
        choice = choices.get(row.unit, UnitChoice())
        if row.creates_unit and row.is_valid and not (choice.existing or choice.create):
            row.problems.append(
                _(
                    "“%(unit)s” is not a unit here: choose the unit it means, or create it.",
                    unit=row.unit,
                )
            )
    result = ImportResult(rows=analysis.rows)
    new_units: dict[str, Unit] = {}
    for row in analysis.rows:
        if not row.is_valid or row.already_enrolled:
            row.outcome = SKIP
            result.skipped += 1
            continue
        unit = row.unit_obj
        if row.creates_unit:
            choice = choices[row.unit]
            if choice.existing is not None:
                unit = choice.existing
                row.notes.append(_("Unit “%(unit)s” is taken as “%(existing)s”.",
                                   unit=row.unit, existing=unit.name))  # fmt: skip
            else:
                if row.unit not in new_units:
                    new_units[row.unit] = create_unit(row.unit, UnitKind.OTHER, choice.parent)
                    result.created_units.append(row.unit)
                unit = new_units[row.unit]
                row.notes.append(
                    _("New unit “%(unit)s” will be created under “%(parent)s”.", unit=row.unit,
                      parent=choice.parent.name if choice.parent else _("(top level)"))
                )  # fmt: skip
        user = row.user
        title = row.title.strip() or None
        if user is None:
            user = create_user(
                display_name=row.name,
                email=row.clean_email,
                phone=row.clean_phone,
                unit=unit,
                job_title=title,
            )
            row.user = user
            result.created_users.append(user)
        elif title and not user.job_title:
            user.job_title = title
            row.notes.append(_("Their title will be set to “%(title)s”.", title=title))
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
    audit.record(
        "import.participants",
        object_type="series",
        object_id=series.id,
        label=series.title,
        series_id=series.id,
        details={
            "file": batch.filename,
            "enrolled": result.enrolled,
            "waitlisted": result.waitlisted,
            "skipped": result.skipped,
            "accounts_created": len(result.created_users),
            "units_created": result.created_units,
        },
        now=now,
    )
    db.session.flush()
    return result


def preview_import(
    batch: ImportBatch,
    series: Series,
    *,
    units: dict[str, UnitChoice] | None = None,
    now: datetime,
) -> Preview:
    """What confirming would do to every row, found by doing it in a savepoint and rolling
    it back, so the preview and the import can never disagree (seats, quotas, units)."""
    analysis = analyse(batch.rows, series)
    choices = unit_choices(analysis, units)
    unknown = [
        UnknownUnit(
            name=name,
            rows=sum(1 for row in analysis.rows if row.unit == name),
            suggestions=analysis.suggestions.get(name, []),
            choice=choices.get(name, UnitChoice()),
        )
        for name in analysis.unknown_units
    ]
    feed_changes = db.session.info.get("feed_changes")
    savepoint = db.session.begin_nested()
    try:
        result = confirm_import(batch, series, units=units, now=now)
        rows = [
            PreviewRow(
                line=row.line,
                name=row.name,
                phone=row.phone,
                email=row.email,
                unit=row.unit,
                role=row.role,
                title=row.title,
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
    return Preview(rows=rows, unknown_units=unknown)


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
