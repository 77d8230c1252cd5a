"""Enrollment: enrolling people (one by one, a whole unit, themselves), the waitlist
and unit quotas, leaving; each start and end announced (webapp/events.py)."""

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
    unit_and_descendant_ids,
)
from webapp.series.access import active_enrollment
from webapp.series.models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    UnitQuota,
    Visibility,
)
from webapp.text import natural_key

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


def enrolled_participants(
    series: Series, *, never_signed_in: bool = False, unit: Unit | None = None
) -> list[User]:
    """The series' enrolled participants; only those who never signed in, or only the
    members of a unit and its sub-units, when asked."""
    users = [e.user for e in participants_of(series, EnrollmentStatus.ENROLLED)]
    if never_signed_in:
        users = [user for user in users if user.last_login_at is None]
    if unit is not None:
        subtree = set(unit_and_descendant_ids(unit))
        users = [user for user in users if user.unit_id in subtree]
    return users


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
    return sorted(
        ((n, e, w) for n, (e, w) in table.items()), key=lambda r: (-r[1], natural_key(r[0]))
    )
