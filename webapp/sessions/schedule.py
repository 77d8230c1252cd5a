"""What people see of sessions across series: a series page with its sessions, a
participant's schedule, a series' recent changes."""

from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from webapp.db import db
from webapp.people.models import User
from webapp.series.access import (
    can_view_series,
)
from webapp.series.models import Enrollment, EnrollmentStatus, Series, SeriesStatus
from webapp.sessions.models import (
    ChangeKind,
    Lecture,
    LectureSession,
    SessionChange,
    SessionStatus,
)


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


def _schedule_query(user: User):
    return (
        select(LectureSession)
        .join(Series, LectureSession.series_id == Series.id)
        .join(Enrollment, Enrollment.series_id == Series.id)
        .where(
            Enrollment.user_id == user.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            Series.status != SeriesStatus.DRAFT,
        )
        .options(
            selectinload(LectureSession.series),
            selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
        )
    )


def upcoming_sessions_for(user: User, *, now: datetime, limit: int = 20) -> list[LectureSession]:
    """Sessions not yet over in the published series the user is enrolled in."""
    query = (
        _schedule_query(user)
        .where(Series.status == SeriesStatus.PUBLISHED, LectureSession.ends_at > now)
        .order_by(LectureSession.starts_at)
        .limit(limit)
    )
    return list(db.session.scalars(query).all())


def past_sessions_for(user: User, *, now: datetime, limit: int = 50) -> list[LectureSession]:
    """Sessions already over, most recent first (archived series included)."""
    query = (
        _schedule_query(user)
        .where(LectureSession.ends_at <= now)
        .order_by(LectureSession.starts_at.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query).all())


def can_view_session(user: User | None, session: LectureSession) -> bool:
    return can_view_series(user, session.series)


def recent_changes(series: Series, limit: int = 20) -> list[SessionChange]:
    return list(
        db.session.scalars(
            select(SessionChange)
            .join(LectureSession)
            .where(LectureSession.series_id == series.id)
            .options(selectinload(SessionChange.changed_by), selectinload(SessionChange.session))
            .order_by(SessionChange.changed_at.desc())
            .limit(limit)
        ).all()
    )


def session_counts(series: Series) -> dict[str, int]:
    counts = Counter(session.status.value for session in series.sessions)
    return {status.value: counts[status.value] for status in SessionStatus}


def live_sessions_for(user: User) -> list[LectureSession]:
    """Sessions on the air now in the series the user is enrolled in (the "live" card)."""
    query = (
        _schedule_query(user)
        .where(
            Series.status == SeriesStatus.PUBLISHED,
            LectureSession.status == SessionStatus.LIVE,
        )
        .order_by(LectureSession.starts_at)
    )
    return list(db.session.scalars(query).all())


def time_participants_had(session: LectureSession) -> tuple[datetime, datetime] | None:
    """原定: the time participants last had before the latest change they were told of.

    The time they have now is the one the latest change notice told them (or the original
    time, if no notice about a move has gone out yet). When that is the session's time, they
    were told of the latest move, and 原定 is what they had before that notice; when the
    session has moved again since, untold, it is the time they have. Moves made between two
    notices (16:00 → 17:00 → 18:00 before anyone was told) are never shown: participants
    never had 17:00. None for a session never moved, or moved back to where they knew it."""
    moves = sorted(
        (change for change in session.changes if change.kind == ChangeKind.RESCHEDULED),
        key=lambda change: change.sequence,
    )
    if not moves:
        return None
    # One notice tells the latest time of the moves it covers: the last move of each notice.
    told: dict[datetime, SessionChange] = {}
    for change in moves:
        if change.announced_at is not None:
            told[change.announced_at] = change
    known = [(moves[0].old_starts_at, moves[0].old_ends_at)]  # the time first published
    known += [(told[at].new_starts_at, told[at].new_ends_at) for at in sorted(told)]
    now = (session.starts_at, session.ends_at)
    had = known[-1] if known[-1] != now else (known[-2] if len(known) > 1 else None)
    return had if had is not None and had != now else None
