"""Who may see and manage a series: its organizers, its participants, the liaisons of
units with members in it; public series for everyone once published."""

from sqlalchemy import func, select

from webapp.db import db
from webapp.people.models import Unit, User
from webapp.people.units import (
    liaison_unit_ids,
    unit_and_descendant_ids,
)
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    Visibility,
)

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
