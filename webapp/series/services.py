"""Who may see and manage a series, enrollment, and what each user's home page lists."""

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from webapp.db import db
from webapp.errors import Conflict
from webapp.people.models import User
from webapp.series.models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    Visibility,
    series_organizer,
)
from webapp.sessions.models import Lecture, LectureSession


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
    return bool(user and user.is_authenticated and active_enrollment(user, series))


def enroll(
    user: User,
    series: Series,
    *,
    source: EnrollmentSource = EnrollmentSource.INDIVIDUAL,
    now: datetime,
) -> Enrollment:
    """Enrol a participant; a cancelled enrollment comes back, an active one is refused."""
    existing = db.session.scalar(
        select(Enrollment).where(Enrollment.user_id == user.id, Enrollment.series_id == series.id)
    )
    if existing is not None and existing.status != EnrollmentStatus.CANCELLED:
        raise Conflict(_("%(name)s is already enrolled in this series.", name=user.display_name))
    if existing is not None:
        existing.status = EnrollmentStatus.ENROLLED
        existing.source = source
        existing.updated_at = now
        enrollment = existing
    else:
        enrollment = Enrollment(
            user=user,
            series=series,
            status=EnrollmentStatus.ENROLLED,
            source=source,
            created_at=now,
            updated_at=now,
        )
        db.session.add(enrollment)
    db.session.flush()
    return enrollment


def series_managed_by(user: User) -> list[Series]:
    """Series the user organizes, newest first (admins see every series)."""
    query = select(Series).options(selectinload(Series.sessions))
    if not user.is_admin:
        query = query.join(series_organizer).where(series_organizer.c.user_id == user.id)
    return list(db.session.scalars(query.order_by(Series.created_at.desc())).all())


def upcoming_sessions_for(user: User, *, now: datetime, limit: int = 20) -> list[LectureSession]:
    """Sessions not yet over in the published series the user is enrolled in."""
    query = (
        select(LectureSession)
        .join(Series, LectureSession.series_id == Series.id)
        .join(Enrollment, Enrollment.series_id == Series.id)
        .where(
            Enrollment.user_id == user.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            Series.status == SeriesStatus.PUBLISHED,
            LectureSession.ends_at > now,
        )
        .options(
            selectinload(LectureSession.series),
            selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
        )
        .order_by(LectureSession.starts_at)
        .limit(limit)
    )
    return list(db.session.scalars(query).all())


def load_series_page(series_id: int) -> Series | None:
    """Load a series with organizers, sessions, lectures and speakers in a fixed few queries."""
    return db.session.scalar(
        select(Series)
        .where(Series.id == series_id)
        .options(
            selectinload(Series.organizers),
            selectinload(Series.sessions)
            .selectinload(LectureSession.lectures)
            .selectinload(Lecture.speakers),
        )
    )


def enrolled_count(series: Series) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Enrollment)
        .where(
            Enrollment.series_id == series.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
        )
    )


def count_series() -> int:
    return db.session.scalar(select(func.count()).select_from(Series))
