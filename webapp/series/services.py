"""Series: creating, editing, archiving them, and the organizer's list of them.
(Access rules: access.py; enrollment: enrollment.py; unit rosters: rosters.py.)"""

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from webapp import events, settings
from webapp.db import db
from webapp.errors import Conflict, InvalidInput
from webapp.people.models import User
from webapp.series.enrollment import promote_from_waitlist
from webapp.series.models import (
    Series,
    SeriesStatus,
    Visibility,
    series_organizer,
)
from webapp.text import clean_line, clean_text
from webapp.zones import is_valid_timezone

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
    attendance_share: int | None = None,
    attendance_late_minutes: int | None = None,
    attendance_gap_minutes: int | None = None,
    makeup_days: int | None = None,
    presence_checks: int = 0,
    presence_answer_seconds: int = 60,
    credit_minutes: int = 45,
) -> Series:
    """Create a draft series with the user as its organizer (thresholds not given: the
    admin's defaults)."""
    defaults = settings.attendance_defaults()
    attendance_share = attendance_share or defaults["attendance_share"]
    if attendance_late_minutes is None:
        attendance_late_minutes = defaults["attendance_late_minutes"]
    if attendance_gap_minutes is None:
        attendance_gap_minutes = defaults["attendance_gap_minutes"]
    series = Series(
        title=_clean_series_fields(title, timezone, capacity),
        description=clean_text(description),
        timezone=timezone,
        visibility=visibility,
        capacity=capacity,
        allows_self_enrollment=allows_self_enrollment,
        attendance_share=attendance_share,
        attendance_late_minutes=attendance_late_minutes,
        attendance_gap_minutes=attendance_gap_minutes,
        makeup_days=makeup_days,
        presence_checks=presence_checks,
        presence_answer_seconds=presence_answer_seconds,
        credit_minutes=credit_minutes,
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
    attendance_share: int | None = None,
    attendance_late_minutes: int | None = None,
    attendance_gap_minutes: int | None = None,
    makeup_days: int | None = None,
    presence_checks: int | None = None,
    presence_answer_seconds: int | None = None,
    credit_minutes: int | None = None,
) -> None:
    """Change a series' settings; a raised capacity lets waiting participants in."""
    series.title = _clean_series_fields(title, timezone, capacity)
    series.description = clean_text(description)
    series.timezone = timezone
    series.visibility = visibility
    series.capacity = capacity
    series.allows_self_enrollment = allows_self_enrollment
    series.makeup_days = makeup_days
    for name, value in (
        ("attendance_share", attendance_share),
        ("attendance_late_minutes", attendance_late_minutes),
        ("attendance_gap_minutes", attendance_gap_minutes),
        ("presence_checks", presence_checks),
        ("presence_answer_seconds", presence_answer_seconds),
        ("credit_minutes", credit_minutes),
    ):
        if value is not None:
            setattr(series, name, value)
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
