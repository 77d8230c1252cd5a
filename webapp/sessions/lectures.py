"""A session's agenda: lectures with their speakers and own times, in order."""

from collections.abc import Sequence
from datetime import datetime

from flask_babel import gettext as _

from webapp import events
from webapp.db import db
from webapp.errors import (
    InvalidInput,
)
from webapp.people.models import Speaker
from webapp.sessions.conflicts import _refuse_speaker_bookings, check_time_range
from webapp.sessions.models import (
    Lecture,
    LectureSession,
)
from webapp.sessions.slots import Slot
from webapp.text import clean_line

# --- lectures -----------------------------------------------------------------------------


def _check_lecture(
    session: LectureSession,
    *,
    title: str,
    speakers: Sequence[Speaker],
    starts_at: datetime | None,
    ends_at: datetime | None,
    exclude_lecture_ids: Sequence[int] = (),
) -> str:
    title = clean_line(title)
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
    slot = Slot(starts_at or session.starts_at, ends_at or session.ends_at)
    if not session.is_cancelled:
        _refuse_speaker_bookings(
            [s.id for s in speakers], slot, exclude_lecture_ids=exclude_lecture_ids
        )
    return title


def add_lecture(
    session: LectureSession,
    *,
    title: str,
    speakers: Sequence[Speaker] = (),
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> Lecture:
    """Add a lecture at the end of a session's agenda; its own times must lie inside it."""
    title = _check_lecture(
        session, title=title, speakers=speakers, starts_at=starts_at, ends_at=ends_at
    )
    lecture = Lecture(
        session=session,
        title=title,
        position=max((lecture.position for lecture in session.lectures), default=-1) + 1,
        starts_at=starts_at,
        ends_at=ends_at,
        speakers=list(speakers),
    )
    db.session.add(lecture)
    _touch_published(session)
    db.session.flush()
    _announce_agenda(session, lecture.title)
    return lecture


def update_lecture(
    lecture: Lecture,
    *,
    title: str,
    speakers: Sequence[Speaker],
    starts_at: datetime | None,
    ends_at: datetime | None,
    now: datetime,
) -> None:
    """Change a lecture's title, speakers or own times; participants of a published session
    are told when a speaker is replaced."""
    old_speakers = [speaker.name for speaker in lecture.speakers]
    lecture.title = _check_lecture(
        lecture.session,
        title=title,
        speakers=speakers,
        starts_at=starts_at,
        ends_at=ends_at,
        exclude_lecture_ids=[lecture.id],
    )
    lecture.speakers = list(speakers)
    lecture.starts_at, lecture.ends_at = starts_at, ends_at
    _touch_published(lecture.session)
    db.session.flush()
    _announce_agenda(
        lecture.session,
        lecture.title,
        old_speakers=old_speakers,
        new_speakers=[speaker.name for speaker in lecture.speakers],
        at=now,
    )


def delete_lecture(lecture: Lecture) -> None:
    """Remove a lecture from its session's agenda."""
    session = lecture.session
    session.lectures.remove(lecture)
    db.session.delete(lecture)
    _renumber(session)
    _touch_published(session)
    db.session.flush()
    _announce_agenda(session, lecture.title)


def move_lecture(lecture: Lecture, offset: int) -> None:
    """Move a lecture up (-1) or down (+1) in its session's agenda."""
    lectures = sorted(lecture.session.lectures, key=lambda item: item.position)
    index = lectures.index(lecture)
    target = min(max(index + offset, 0), len(lectures) - 1)
    lectures.insert(target, lectures.pop(index))
    for position, item in enumerate(lectures):
        item.position = position
    _touch_published(lecture.session)
    db.session.flush()
    _announce_agenda(lecture.session, lecture.title)


def _renumber(session: LectureSession) -> None:
    for position, item in enumerate(sorted(session.lectures, key=lambda item: item.position)):
        item.position = position


def _touch_published(session: LectureSession) -> None:
    """A published session's agenda changed: calendars must pick up the new description."""
    if session.is_published:
        session.sequence += 1


def _announce_agenda(
    session: LectureSession,
    lecture: str,
    *,
    old_speakers: Sequence[str] = (),
    new_speakers: Sequence[str] = (),
    at: datetime | None = None,
) -> None:
    events.lecture_changed.send(
        session_id=session.id,
        series_id=session.series_id,
        lecture=lecture,
        old_speakers=list(old_speakers),
        new_speakers=list(new_speakers),
        published=session.is_published,
        at=at,
    )
