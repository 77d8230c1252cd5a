"""Unit rosters: a liaison sees and confirms who of their unit is enrolled in a series."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from webapp.db import db
from webapp.people.models import Unit, User
from webapp.people.units import (
    is_liaison_for,
    liaison_unit_ids,
    unit_and_descendant_ids,
)
from webapp.series.access import can_manage_series
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
)

# --- liaisons -------------------------------------------------------------------------------


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
            .options(
                selectinload(Enrollment.user).selectinload(User.unit),
                selectinload(Enrollment.confirmed_by),
            )
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


@dataclass(frozen=True)
class RosterLink:
    series: Series
    unit: Unit
    people: int
    confirmed: int  # of them, confirmed by a liaison
    last_confirmed_at: datetime | None


def rosters_for_liaison(user: User, *, series_id: int | None = None) -> list[RosterLink]:
    """The rosters a liaison can open: for each unit they look after, each series (not a
    draft) with people of the unit or a unit below it enrolled; optionally of one series."""
    links = []
    units = db.session.scalars(
        select(Unit).where(Unit.id.in_(liaison_unit_ids(user))).order_by(Unit.id)
    ).all()
    for unit in units:
        query = (
            select(
                Series,
                func.count(Enrollment.user_id),
                func.count(Enrollment.confirmed_at),
                func.max(Enrollment.confirmed_at),
            )
            .join(Enrollment, Enrollment.series_id == Series.id)
            .join(User, User.id == Enrollment.user_id)
            .where(
                User.unit_id.in_(unit_and_descendant_ids(unit)),
                Enrollment.status != EnrollmentStatus.CANCELLED,
                Series.status != SeriesStatus.DRAFT,
            )
            .group_by(Series.id)
            .order_by(Series.id)
        )
        if series_id is not None:
            query = query.where(Series.id == series_id)
        for series, people, confirmed, last in db.session.execute(query):
            links.append(RosterLink(series, unit, people, confirmed, last))
    return links
