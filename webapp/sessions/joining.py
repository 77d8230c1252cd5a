"""Joining a live session: who may, when the room is open, and the record of who joined."""

from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from webapp.db import db
from webapp.errors import (
    Conflict,
)
from webapp.i18n import format_start
from webapp.people.models import User
from webapp.series.access import (
    active_enrollment,
    can_manage_series,
)
from webapp.series.models import (
    SeriesStatus,
)
from webapp.sessions.models import (
    AttendanceEvent,
    AttendanceKind,
    AttendanceSource,
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


def room_opens_at(session: LectureSession) -> datetime:
    """When the live room opens: JOIN_OPENS_MINUTES (30) before the start."""
    return session.starts_at - timedelta(minutes=current_app.config["JOIN_OPENS_MINUTES"])


def room_is_open(session: LectureSession, *, now: datetime) -> bool:
    return not session.is_cancelled and room_opens_at(session) <= now < session.ends_at


def join_session(session: LectureSession, user: User, *, now: datetime) -> str:
    """Record that someone joined a live session; return the room's link to open. Only
    while the room is open: a press before it opens or after the end counts for nothing
    and says why."""
    if session.is_cancelled:
        raise Conflict(_("This session is cancelled."))
    if session.ends_at <= now:
        raise Conflict(_("This session is over."))
    if now < room_opens_at(session):
        raise Conflict(
            _(
                "The live room opens at %(time)s, %(minutes)d minutes before the start.",
                time=format_start(
                    room_opens_at(session), user.timezone or session.series.timezone, now=now
                ),
                minutes=current_app.config["JOIN_OPENS_MINUTES"],
            )
        )
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
    db.session.add(
        AttendanceEvent(
            session_id=session.id,
            user_id=user.id,
            source=AttendanceSource.JOIN,
            kind=AttendanceKind.JOIN,
            at=now,
        )
    )
    db.session.flush()


def joined_user_ids(session: LectureSession) -> set[int]:
    return set(
        db.session.scalars(select(SessionJoin.user_id).where(SessionJoin.session_id == session.id))
    )
