"""Creating sessions and lectures, with the rules on their times."""

from collections.abc import Sequence
from datetime import datetime

from flask_babel import gettext as _

from webapp.db import db
from webapp.people.models import Speaker
from webapp.people.services import InvalidInput
from webapp.series.models import Series
from webapp.sessions.models import Lecture, LectureSession


def check_time_range(starts_at: datetime, ends_at: datetime) -> None:
    """Refuse a range that does not end after it starts."""
    if ends_at <= starts_at:
        raise InvalidInput(_("The end time must be after the start time."), field="ends_at")


def create_session(
    series: Series,
    *,
    starts_at: datetime,
    ends_at: datetime,
    title: str = "",
    location: str | None = None,
) -> LectureSession:
    """Add a session to a series."""
    check_time_range(starts_at, ends_at)
    session = LectureSession(
        series=series,
        title=title.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        location=location,
    )
    db.session.add(session)
    db.session.flush()
    return session


def add_lecture(
    session: LectureSession,
    *,
    title: str,
    speakers: Sequence[Speaker] = (),
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Lecture:
    """Add a lecture at the end of a session's agenda; its own times must lie inside it."""
    title = title.strip()
    if not title:
        raise InvalidInput(_("Please enter a title."), field="title")
    if (starts_at is None) != (ends_at is None):
        raise InvalidInput(
            _("Give the lecture both a start and an end time, or neither."), field="starts_at"
        )
    if starts_at is not None and ends_at is not None:
        check_time_range(starts_at, ends_at)
        if starts_at < session.starts_at or ends_at > session.ends_at:
            raise InvalidInput(
                _("The lecture must lie inside its session's time."), field="starts_at"
            )
    lecture = Lecture(
        session=session,
        title=title,
        position=len(session.lectures),
        starts_at=starts_at,
        ends_at=ends_at,
        speakers=list(speakers),
    )
    db.session.add(lecture)
    db.session.flush()
    return lecture
