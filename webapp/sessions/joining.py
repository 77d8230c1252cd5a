"""Joining a live session: who may, when the room is open, and the record of who joined."""

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.db import db
from webapp.errors import (
    Conflict,
)
from webapp.people.models import User
from webapp.series.access import (
    active_enrollment,
    can_manage_series,
)
from webapp.series.models import (
    SeriesStatus,
)
from webapp.sessions.models import (
    LectureSession,
    SessionJoin,
)

# --- joining --------------------------------------------------------------------------------


def may_join(user: User, session: LectureSession) -> bool:
    """Participants enrolled in the series, once the session is out; its organizers always."""
    series = session.series
    if can_manage_series(user, series):
        return True
    return (
        session.published_at is not None
        and series.status != SeriesStatus.DRAFT
        and active_enrollment(user, series) is not None
    )


def join_session(session: LectureSession, user: User, *, now: datetime) -> str:
    """Record that someone joined a live session; return the room's link to open."""
    if session.is_cancelled or session.ends_at <= now:
        raise Conflict(_("This session is not live."))
    if not session.join_url:
        raise Conflict(_("The organizer has not added a join link yet."))
    record_join(session, user, now=now)
    return session.join_url


def record_join(session: LectureSession, user: User, *, now: datetime) -> None:
    """Remember that the participant joined the session (first and latest time)."""
    join = db.session.get(SessionJoin, (session.id, user.id))
    if join is None:
        db.session.add(
            SessionJoin(
                session_id=session.id, user_id=user.id, first_joined_at=now, last_joined_at=now
            )
        )
    else:
        join.last_joined_at = now
    db.session.flush()


def joined_user_ids(session: LectureSession) -> set[int]:
    return set(
        db.session.scalars(select(SessionJoin.user_id).where(SessionJoin.session_id == session.id))
    )
