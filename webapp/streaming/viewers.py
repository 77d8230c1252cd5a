"""Who is watching: now (fresh heartbeats and RTMP plays not yet left), in all, at the peak,
over time, and per unit who has not come yet. Worked out from the attendance events."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import aliased

from webapp.db import db, insert_new
from webapp.people.models import Unit, User
from webapp.series.models import Enrollment, EnrollmentStatus
from webapp.sessions.models import (
    AttendanceEvent,
    AttendanceKind,
    AttendanceSource,
    LectureSession,
    SessionStatus,
)
from webapp.streaming.models import ViewerSample
from webapp.text import natural_key

WATCHING = (AttendanceSource.PLAYER, AttendanceSource.RTMP)


def _watching_now(session_id: int, now: datetime):
    """The ids of those watching now: a player heartbeat or RTMP play within
    VIEWER_FRESH_SECONDS, not followed by their leaving."""
    fresh = now - timedelta(seconds=current_app.config["VIEWER_FRESH_SECONDS"])
    left = aliased(AttendanceEvent)
    return (
        select(AttendanceEvent.user_id)
        .where(
            AttendanceEvent.session_id == session_id,
            AttendanceEvent.at > fresh,
            AttendanceEvent.source.in_(WATCHING),
            AttendanceEvent.kind != AttendanceKind.LEAVE,
            ~exists().where(
                and_(
                    left.session_id == session_id,
                    left.user_id == AttendanceEvent.user_id,
                    left.source == AttendanceEvent.source,
                    left.kind == AttendanceKind.LEAVE,
                    left.at >= AttendanceEvent.at,
                )
            ),
        )
        .distinct()
    )


def viewers_now(session_id: int, *, now: datetime) -> int:
    return db.session.scalar(
        select(func.count()).select_from(_watching_now(session_id, now).subquery())
    )


def watching_now(session_id: int, *, now: datetime, limit: int = 200) -> list[User]:
    ids = _watching_now(session_id, now).subquery()
    return list(
        db.session.scalars(
            select(User).join(ids, ids.c.user_id == User.id).order_by(User.id).limit(limit)
        )
    )


@dataclass(frozen=True)
class LiveFigures:
    now: int
    total: int  # everyone who watched or joined at all
    peak: int
    samples: list[tuple[datetime, int]]


def live_figures(session: LectureSession, *, now: datetime) -> LiveFigures:
    current = viewers_now(session.id, now=now)
    total = db.session.scalar(
        select(func.count(func.distinct(AttendanceEvent.user_id))).where(
            AttendanceEvent.session_id == session.id,
            AttendanceEvent.source.in_([*WATCHING, AttendanceSource.JOIN]),
        )
    )
    samples = viewer_samples(session.id)
    peak = max([current, *(viewers for _at, viewers in samples)])
    return LiveFigures(now=current, total=total, peak=peak, samples=samples)


def viewer_samples(session_id: int) -> list[tuple[datetime, int]]:
    """The worker's viewer counts of a session, oldest first (the chart)."""
    return [
        (row.at, row.viewers)
        for row in db.session.execute(
            select(ViewerSample.at, ViewerSample.viewers)
            .where(ViewerSample.session_id == session_id)
            .order_by(ViewerSample.at)
        )
    ]


def not_joined_by_unit(session: LectureSession) -> list[tuple[str, list[str]]]:
    """Enrolled participants with no attendance event for the session, by unit (units in
    name order, those without a unit last)."""
    came = select(AttendanceEvent.user_id).where(AttendanceEvent.session_id == session.id)
    rows = db.session.execute(
        select(User.display_name, Unit.name)
        .join(Enrollment, Enrollment.user_id == User.id)
        .outerjoin(Unit, Unit.id == User.unit_id)
        .where(
            Enrollment.series_id == session.series_id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            User.id.not_in(came),
        )
        .order_by(Unit.name.is_(None), Unit.name, User.display_name)
    )
    grouped: dict[str, list[str]] = {}
    for name, unit in rows:
        grouped.setdefault(unit or "", []).append(name)
    # Units in natural order (第二 before 第十), those without one last.
    return sorted(grouped.items(), key=lambda item: (not item[0], natural_key(item[0])))


def sample_viewers(*, now: datetime) -> int:
    """The worker's round: one sample per live session (the chart and the peak)."""
    live = db.session.scalars(
        select(LectureSession.id).where(LectureSession.status == SessionStatus.LIVE)
    ).all()
    # On the half minute, so that several workers counting at once write one sample.
    at = now.replace(second=now.second - now.second % 30, microsecond=0)
    rows = [
        dict(session_id=session_id, at=at, viewers=viewers_now(session_id, now=now))
        for session_id in live
    ]
    insert_new(ViewerSample, rows, ["session_id", "at"])
    return len(live)
