"""Series: creating and publishing them, who may see and manage them, and enrollment with
capacity, unit quotas, a waitlist, self-enrollment and unit liaisons."""

from collections import Counter
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from webapp import events
from webapp.db import db
from webapp.errors import Conflict, InvalidInput, PermissionDenied
from webapp.people.models import Unit, User
from webapp.people.units import (
    is_liaison_for,
    liaison_unit_ids,
    unit_and_descendant_ids,
)
from webapp.series.models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    UnitQuota,
    Visibility,
    series_organizer,
)
from webapp.text import clean_line, clean_text
from webapp.zones import is_valid_timezone

# --- access ---------------------------------------------------------------------------------


def is_series_organizer(user: User, series: Series) -> bool:
    return any(organizer.id == user.id for organizer in series.organizers)


def can_manage_series(user: User | None, series: Series) -> bool:
    """Organizers of the series and admins manage it."""
    if user is None or not user.is_authenticated:
        return False
    return user.is_admin or is_series_organizer(user, series)


def active_enrollment(user: User, series: Series) -> Enrollment | None:
    """Return the user's enrollment in the series unless it was cancelled."""
    return db.session.scalar(
        select(Enrollment).where(
            Enrollment.user_id == user.id,
            Enrollment.series_id == series.id,
            Enrollment.status != EnrollmentStatus.CANCELLED,
        )
    )


def can_view_series(user: User | None, series: Series) -> bool:
    """Drafts only for managers; enrolled-only series for its participants too."""
    if can_manage_series(user, series):
        return True
    if series.status == SeriesStatus.DRAFT:
        return False
    if series.visibility == Visibility.PUBLIC:
        return True
    if not (user and user.is_authenticated):
        return False
    return bool(active_enrollment(user, series)) or is_liaison_in_series(user, series)


# --- series ---------------------------------------------------------------------------------


def _clean_series_fields(title: str, timezone: str, capacity: int | None) -> str:
    title = clean_line(title)
    if not title:
        raise InvalidInput(_("Please enter a title."), field="title")
    if not is_valid_timezone(timezone):
        raise InvalidInput(
            _("“%(value)s” is not a known time zone.", value=timezone), field="timezone"
        )
    if capacity is not None and capacity < 1:
        raise InvalidInput(_("The capacity must be at least 1."), field="capacity")
    return title


def create_series(
    *,
    title: str,
    organizer: User,
    now: datetime,
    description: str = "",
    timezone: str = "Asia/Shanghai",
    visibility: Visibility = Visibility.ENROLLED,
    capacity: int | None = None,
    allows_self_enrollment: bool = False,
) -> Series:
    """Create a draft series with the user as its organizer."""
    series = Series(
        title=_clean_series_fields(title, timezone, capacity),
        description=clean_text(description),
        timezone=timezone,
        visibility=visibility,
        capacity=capacity,
        allows_self_enrollment=allows_self_enrollment,
        status=SeriesStatus.DRAFT,
        organizers=[organizer],
        created_at=now,
        updated_at=now,
    )
    db.session.add(series)
    db.session.flush()
    events.series_created.send(series_id=series.id)
    return series


def update_series(
    series: Series,
    *,
    title: str,
    description: str,
    timezone: str,
    visibility: Visibility,
    capacity: int | None,
    allows_self_enrollment: bool,
    now: datetime,
) -> None:
    """Change a series' settings; a raised capacity lets waiting participants in."""
    series.title = _clean_series_fields(title, timezone, capacity)
    series.description = clean_text(description)
    series.timezone = timezone
    series.visibility = visibility
    series.capacity = capacity
    series.allows_self_enrollment = allows_self_enrollment
    db.session.flush()
    events.series_changed.send(series_id=series.id)
    promote_from_waitlist(series, now=now)


def archive_series(series: Series) -> None:
    """Archive a published series: it stays readable, off the organizer's active list."""
    if series.status != SeriesStatus.PUBLISHED:
        raise Conflict(_("Only a published series can be archived."))
    series.status = SeriesStatus.ARCHIVED
    db.session.flush()
    events.series_archived.send(series_id=series.id)


def unarchive_series(series: Series) -> None:
    """Bring an archived series back to published."""
    if series.status != SeriesStatus.ARCHIVED:
        raise Conflict(_("This series is not archived."))
    series.status = SeriesStatus.PUBLISHED
    db.session.flush()
    events.series_unarchived.send(series_id=series.id)


def series_managed_by(user: User) -> list[Series]:
    """Series the user organizes, newest first (admins see every series)."""
    query = select(Series).options(selectinload(Series.sessions))
    if not user.is_admin:
        query = query.join(series_organizer).where(series_organizer.c.user_id == user.id)
    return list(db.session.scalars(query.order_by(Series.created_at.desc())).all())


def count_series() -> int:
    return db.session.scalar(select(func.count()).select_from(Series))


# --- enrollment -----------------------------------------------------------------------------


def enrolled_count(series: Series) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Enrollment)
        .where(
            Enrollment.series_id == series.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
        )
    )


def _quota_for(series: Series, unit_id: int | None) -> tuple[UnitQuota, list[int]] | None:
    """The quota that covers a unit (its own or its nearest ancestor's), with the units it
    covers."""
    if unit_id is None:
        return None
    quotas = {
        quota.unit_id: quota
        for quota in db.session.scalars(select(UnitQuota).where(UnitQuota.series_id == series.id))
    }
    if not quotas:
        return None
    unit = db.session.get(Unit, unit_id)
    while unit is not None:
        if unit.id in quotas:
            return quotas[unit.id], unit_and_descendant_ids(unit)
        unit = unit.parent
    return None


def _has_seat(series: Series, user: User) -> bool:
    if series.capacity is not None and enrolled_count(series) >= series.capacity:
        return False
    covered = _quota_for(series, user.unit_id)
    if covered is None:
        return True
    quota, unit_ids = covered
    used = db.session.scalar(
        select(func.count())
        .select_from(Enrollment)
        .join(User, User.id == Enrollment.user_id)
        .where(
            Enrollment.series_id == series.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            User.unit_id.in_(unit_ids),
        )
    )
    return used < quota.quota


def enroll(
    user: User,
    series: Series,
    *,
    source: EnrollmentSource = EnrollmentSource.INDIVIDUAL,
    now: datetime,
    notify: bool = True,
) -> Enrollment:
    """Enrol a participant, or put them on the waitlist when the series or their unit is
    full; a cancelled enrollment comes back, an active one is refused."""
    existing = db.session.scalar(
        select(Enrollment).where(Enrollment.user_id == user.id, Enrollment.series_id == series.id)
    )
    if existing is not None and existing.status != EnrollmentStatus.CANCELLED:
        raise Conflict(_("%(name)s is already enrolled in this series.", name=user.display_name))
    status = EnrollmentStatus.ENROLLED if _has_seat(series, user) else EnrollmentStatus.WAITLISTED
    enrollment = existing or Enrollment(user=user, series=series, created_at=now)
    enrollment.status = status
    enrollment.source = source
    enrollment.enrolled_at = now
    enrollment.updated_at = now
    enrollment.confirmed_at = None
    enrollment.confirmed_by_id = None
    db.session.add(enrollment)
    db.session.flush()
    events.enrollment_started.send(
        series_id=series.id,
        user_id=user.id,
        waitlisted=status == EnrollmentStatus.WAITLISTED,
        promoted=False,
        quiet=not notify,
        at=now,
    )
    return enrollment


def remove_enrollment(enrollment: Enrollment, *, now: datetime) -> list[Enrollment]:
    """Take a participant out of a series; a freed seat goes to the first who waits.

    Returns the enrollments promoted from the waitlist."""
    if enrollment.status == EnrollmentStatus.CANCELLED:
        raise Conflict(_("This participant is no longer enrolled."))
    was_enrolled = enrollment.status == EnrollmentStatus.ENROLLED
    enrollment.status = EnrollmentStatus.CANCELLED
    enrollment.updated_at = now
    db.session.flush()
    events.enrollment_ended.send(series_id=enrollment.series_id, user_id=enrollment.user_id)
    return promote_from_waitlist(enrollment.series, now=now) if was_enrolled else []


def promote_from_waitlist(series: Series, *, now: datetime) -> list[Enrollment]:
    """Give free seats to waiting participants in the order they joined; each is told."""
    waiting = db.session.scalars(
        select(Enrollment)
        .where(Enrollment.series_id == series.id, Enrollment.status == EnrollmentStatus.WAITLISTED)
        .order_by(Enrollment.enrolled_at, Enrollment.id)
        .options(selectinload(Enrollment.user))
    ).all()
    promoted = []
    for enrollment in waiting:
        if series.capacity is not None and enrolled_count(series) >= series.capacity:
            break
        if not _has_seat(series, enrollment.user):
            continue  # their unit is full; someone from another unit may still fit
        enrollment.status = EnrollmentStatus.ENROLLED
        enrollment.updated_at = now
        db.session.flush()
        events.enrollment_started.send(
            series_id=series.id,
            user_id=enrollment.user_id,
            waitlisted=False,
            promoted=True,
            quiet=False,
            at=now,
        )
        promoted.append(enrollment)
    return promoted


def enroll_unit(
    unit: Unit, series: Series, *, now: datetime, include_sub_units: bool = True
) -> dict[str, int]:
    """Enrol every active member of a unit (and its sub-units); counts what happened."""
    unit_ids = unit_and_descendant_ids(unit) if include_sub_units else [unit.id]
    members = db.session.scalars(
        select(User).where(User.unit_id.in_(unit_ids), User.is_active.is_(True)).order_by(User.id)
    ).all()
    existing = {
        enrollment.user_id: enrollment
        for enrollment in db.session.scalars(
            select(Enrollment).where(Enrollment.series_id == series.id)
        )
    }
    counts: Counter[str] = Counter()
    for member in members:
        current = existing.get(member.id)
        if current is not None and current.status != EnrollmentStatus.CANCELLED:
            counts["already"] += 1
            continue
        enrollment = enroll(member, series, source=EnrollmentSource.UNIT, now=now)
        counts[enrollment.status.value] += 1
    return {
        "enrolled": counts["enrolled"],
        "waitlisted": counts["waitlisted"],
        "already": counts["already"],
    }


def set_unit_quota(series: Series, unit: Unit, quota: int | None, *, now: datetime) -> None:
    """Limit how many seats a unit may fill (None removes the limit)."""
    existing = db.session.get(UnitQuota, (series.id, unit.id))
    if quota is None:
        if existing is not None:
            db.session.delete(existing)
    elif quota < 0:
        raise InvalidInput(_("The quota cannot be negative."), field="quota")
    elif existing is None:
        db.session.add(UnitQuota(series_id=series.id, unit_id=unit.id, quota=quota))
    else:
        existing.quota = quota
    db.session.flush()
    promote_from_waitlist(series, now=now)


def unit_quotas(series: Series) -> list[UnitQuota]:
    return list(
        db.session.scalars(
            select(UnitQuota)
            .where(UnitQuota.series_id == series.id)
            .options(selectinload(UnitQuota.unit))
        ).all()
    )


def self_enroll(user: User, series: Series, *, now: datetime) -> Enrollment:
    """A participant enrols themselves in a public series that allows it."""
    if not (
        series.status == SeriesStatus.PUBLISHED
        and series.visibility == Visibility.PUBLIC
        and series.allows_self_enrollment
    ):
        raise PermissionDenied(_("This series does not take self-enrollment."))
    return enroll(user, series, source=EnrollmentSource.SELF, now=now)


def leave_series(user: User, series: Series, *, now: datetime) -> None:
    """A participant leaves a series they enrolled in themselves."""
    enrollment = active_enrollment(user, series)
    if enrollment is None:
        raise Conflict(_("You are not enrolled in this series."))
    if enrollment.source != EnrollmentSource.SELF:
        raise PermissionDenied(
            _("Your organizer enrolled you; please ask them to take you off the list.")
        )
    remove_enrollment(enrollment, now=now)


def participants_of(series: Series, status: EnrollmentStatus | None = None) -> list[Enrollment]:
    """Enrollments of a series with their users and units, waitlist in serving order."""
    query = (
        select(Enrollment)
        .where(Enrollment.series_id == series.id)
        .options(selectinload(Enrollment.user).selectinload(User.unit))
        .order_by(Enrollment.status, Enrollment.enrolled_at, Enrollment.id)
    )
    if status is not None:
        query = query.where(Enrollment.status == status)
    else:
        query = query.where(Enrollment.status != EnrollmentStatus.CANCELLED)
    return list(db.session.scalars(query).all())


def enrolled_count_by_unit(series: Series) -> list[tuple[str, int, int]]:
    """(unit name, enrolled, waitlisted) for the organizer overview, biggest first."""
    rows = db.session.execute(
        select(Unit.name, Enrollment.status, func.count())
        .select_from(Enrollment)
        .join(User, User.id == Enrollment.user_id)
        .outerjoin(Unit, Unit.id == User.unit_id)
        .where(Enrollment.series_id == series.id, Enrollment.status != EnrollmentStatus.CANCELLED)
        .group_by(Unit.name, Enrollment.status)
    ).all()
    table: dict[str, list[int]] = {}
    for name, status, count in rows:
        entry = table.setdefault(name or _("No unit"), [0, 0])
        entry[0 if status == EnrollmentStatus.ENROLLED else 1] += count
    return sorted(((n, e, w) for n, (e, w) in table.items()), key=lambda r: (-r[1], r[0]))


# --- liaisons -------------------------------------------------------------------------------


def is_liaison_in_series(user: User, series: Series) -> bool:
    """A liaison of a unit some of whose members are in the series."""
    unit_ids: set[int] = set()
    for unit_id in liaison_unit_ids(user):
        unit_ids.update(unit_and_descendant_ids(db.session.get(Unit, unit_id)))
    if not unit_ids:
        return False
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .join(User, User.id == Enrollment.user_id)
            .where(
                Enrollment.series_id == series.id,
                Enrollment.status != EnrollmentStatus.CANCELLED,
                User.unit_id.in_(unit_ids),
            )
        )
        > 0
    )


def unit_roster(series: Series, unit: Unit) -> list[Enrollment]:
    """Participants of the series from the unit and its sub-units."""
    unit_ids = unit_and_descendant_ids(unit)
    return list(
        db.session.scalars(
            select(Enrollment)
            .join(User, User.id == Enrollment.user_id)
            .where(
                Enrollment.series_id == series.id,
                Enrollment.status != EnrollmentStatus.CANCELLED,
                User.unit_id.in_(unit_ids),
            )
            .options(selectinload(Enrollment.user).selectinload(User.unit))
            .order_by(User.unit_id, User.id)
        ).all()
    )


def can_open_roster(user: User, series: Series, unit: Unit) -> bool:
    """Managers of the series; a liaison of the unit (or a unit above it) only for a series
    that is not a draft and has members of the unit enrolled."""
    if can_manage_series(user, series):
        return True
    if series.status == SeriesStatus.DRAFT or not is_liaison_for(user, unit):
        return False
    return bool(unit_roster(series, unit))


def confirm_roster(series: Series, unit: Unit, *, by: User, now: datetime) -> int:
    """A liaison confirms their unit's roster; returns how many entries were confirmed."""
    count = 0
    for enrollment in unit_roster(series, unit):
        if enrollment.confirmed_at is None:
            enrollment.confirmed_at = now
            enrollment.confirmed_by_id = by.id
            count += 1
    db.session.flush()
    return count
