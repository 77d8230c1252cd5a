"""The conflict rules checked on every change: a series' own sessions must not overlap,
a speaker cannot be in two places, and participants with other series at the same time
are a warning to confirm."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import and_, func, select
from sqlalchemy.orm import aliased, selectinload

from webapp.bounds import date_in_range, date_range_message
from webapp.db import db, utcnow
from webapp.errors import (
    Conflict,
    InvalidInput,
    NeedsConfirmation,
)
from webapp.i18n import (
    format_time_range,
)
from webapp.people.models import Speaker, User
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
)
from webapp.sessions.models import (
    Lecture,
    LectureSession,
    SessionStatus,
    lecture_speaker,
)
from webapp.sessions.slots import Slot

# --- conflicts ----------------------------------------------------------------------------


def check_time_range(starts_at: datetime, ends_at: datetime) -> None:
    """Refuse a range that does not end after it starts, or lies outside the supported years."""
    if not (date_in_range(starts_at.date()) and date_in_range(ends_at.date())):
        raise InvalidInput(str(date_range_message()), field="starts_at")
    if ends_at <= starts_at:
        raise InvalidInput(_("The end time must be after the start time."), field="ends_at")


def _overlaps(start_col, end_col, starts_at: datetime, ends_at: datetime):
    return and_(start_col < ends_at, end_col > starts_at)


def overlapping_series_sessions(
    series: Series, slot: Slot, *, exclude_ids: Sequence[int] = ()
) -> list[LectureSession]:
    """Sessions of the same series (not cancelled) that overlap the slot."""
    query = select(LectureSession).where(
        LectureSession.series_id == series.id,
        LectureSession.status != SessionStatus.CANCELLED,
        _overlaps(LectureSession.starts_at, LectureSession.ends_at, slot.starts_at, slot.ends_at),
    )
    if exclude_ids:
        query = query.where(LectureSession.id.not_in(list(exclude_ids)))
    return list(db.session.scalars(query).all())


def speaker_bookings(
    speaker_ids: Sequence[int],
    slot: Slot,
    *,
    exclude_lecture_ids: Sequence[int] = (),
) -> list[tuple[Speaker, Lecture]]:
    """Lectures anywhere in the system where one of the speakers is booked during the slot.

    A lecture without times of its own takes its session's time."""
    if not speaker_ids:
        return []
    effective_start = func.coalesce(Lecture.starts_at, LectureSession.starts_at)
    effective_end = func.coalesce(Lecture.ends_at, LectureSession.ends_at)
    query = (
        select(Speaker, Lecture)
        .join(lecture_speaker, lecture_speaker.c.speaker_id == Speaker.id)
        .join(Lecture, Lecture.id == lecture_speaker.c.lecture_id)
        .join(LectureSession, LectureSession.id == Lecture.session_id)
        .where(
            Speaker.id.in_(list(speaker_ids)),
            LectureSession.status != SessionStatus.CANCELLED,
            _overlaps(effective_start, effective_end, slot.starts_at, slot.ends_at),
        )
        .options(selectinload(Lecture.session).selectinload(LectureSession.series))
    )
    if exclude_lecture_ids:
        query = query.where(Lecture.id.not_in(list(exclude_lecture_ids)))
    return [(speaker, lecture) for speaker, lecture in db.session.execute(query).all()]


def participant_overlaps(series: Series, slot: Slot, *, limit: int = 5) -> tuple[int, list[str]]:
    """Participants of the series who are also in another series with a session overlapping
    the slot: (how many, a few example lines)."""
    own = aliased(Enrollment)
    other = aliased(Enrollment)
    query = (
        select(
            User.display_name,
            Series.title,
            LectureSession.starts_at,
            LectureSession.ends_at,
            Series.timezone,
        )
        .select_from(own)
        .join(User, User.id == own.user_id)
        .join(other, and_(other.user_id == own.user_id, other.series_id != series.id))
        .join(Series, Series.id == other.series_id)
        .join(LectureSession, LectureSession.series_id == other.series_id)
        .where(
            own.series_id == series.id,
            own.status == EnrollmentStatus.ENROLLED,
            other.status == EnrollmentStatus.ENROLLED,
            Series.status != SeriesStatus.DRAFT,
            LectureSession.status != SessionStatus.CANCELLED,
            _overlaps(
                LectureSession.starts_at, LectureSession.ends_at, slot.starts_at, slot.ends_at
            ),
        )
        .order_by(User.id)
    )
    rows = db.session.execute(query).all()
    names = {row[0] for row in rows}
    examples = [
        _(
            "%(name)s is also in “%(series)s” at %(time)s.",
            name=name,
            series=title,
            time=format_time_range(starts_at, ends_at, tz_name),
        )
        for name, title, starts_at, ends_at, tz_name in rows[:limit]
    ]
    return len(names), examples


def participant_overlaps_for_user(user: User, series: Series, *, limit: int = 5) -> list[str]:
    """Warnings when the user's other series have sessions at the same time as this one's."""
    mine = aliased(LectureSession)
    theirs = aliased(LectureSession)
    other_series = aliased(Series)
    rows = db.session.execute(
        select(other_series.title, theirs.starts_at, theirs.ends_at, other_series.timezone)
        .select_from(mine)
        .join(theirs, _overlaps(theirs.starts_at, theirs.ends_at, mine.starts_at, mine.ends_at))
        .join(other_series, other_series.id == theirs.series_id)
        .join(Enrollment, Enrollment.series_id == other_series.id)
        .where(
            mine.series_id == series.id,
            mine.status != SessionStatus.CANCELLED,
            theirs.series_id != series.id,
            theirs.status != SessionStatus.CANCELLED,
            other_series.status != SeriesStatus.DRAFT,
            Enrollment.user_id == user.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
        )
        .order_by(theirs.starts_at)
        .limit(limit)
    ).all()
    return [
        _(
            "%(name)s is also in “%(series)s” at %(time)s.",
            name=user.display_name,
            series=title,
            time=format_time_range(starts_at, ends_at, tz_name),
        )
        for title, starts_at, ends_at, tz_name in rows
    ]


def check_session_slot(
    series: Series,
    slot: Slot,
    *,
    speaker_ids: Sequence[int] = (),
    exclude_session_ids: Sequence[int] = (),
    exclude_lecture_ids: Sequence[int] = (),
    accept_warnings: bool,
) -> None:
    """Every rule a session's time must pass; warnings only when not accepted."""
    check_time_range(slot.starts_at, slot.ends_at)
    clashes = overlapping_series_sessions(series, slot, exclude_ids=exclude_session_ids)
    if clashes:
        clash = clashes[0]
        raise Conflict(
            _(
                "This overlaps another session of the series: %(title)s, %(time)s.",
                title=clash.title or _("untitled"),
                time=format_time_range(clash.starts_at, clash.ends_at, series.timezone),
            ),
            field="starts_at",
        )
    _refuse_speaker_bookings(speaker_ids, slot, exclude_lecture_ids=exclude_lecture_ids)
    if not accept_warnings:
        warnings = timing_warnings(slot, now=utcnow())
        count, examples = participant_overlaps(series, slot)
        if count:
            warnings += [
                _(
                    "%(count)d participant(s) of this series are enrolled in another "
                    "series with a session at the same time.",
                    count=count,
                ),
                *examples,
            ]
        if warnings:
            raise NeedsConfirmation(warnings)


SOON = timedelta(hours=1)


def timing_warnings(slot: Slot, *, now: datetime) -> list[str]:
    """A time that is probably a slip: already begun, or too soon for reminders and
    calendars to reach people."""
    if slot.starts_at <= now:
        return [_("This time has already begun: participants cannot be told in advance.")]
    if slot.starts_at - now < SOON:
        return [
            _(
                "This session starts in less than an hour: reminders and calendars may not "
                "reach participants in time."
            )
        ]
    return []


def _refuse_speaker_bookings(
    speaker_ids: Sequence[int], slot: Slot, *, exclude_lecture_ids: Sequence[int]
) -> None:
    bookings = speaker_bookings(speaker_ids, slot, exclude_lecture_ids=exclude_lecture_ids)
    if bookings:
        speaker, lecture = bookings[0]
        session = lecture.session
        raise Conflict(
            _(
                "%(speaker)s is already booked then: 《%(lecture)s》 in “%(series)s”, %(time)s.",
                speaker=speaker.name,
                lecture=lecture.title,
                series=session.series.title,
                time=format_time_range(
                    lecture.starts_at or session.starts_at,
                    lecture.ends_at or session.ends_at,
                    session.series.timezone,
                ),
            ),
            field="speakers",
        )


def _session_speaker_ids(session: LectureSession) -> list[int]:
    return sorted({speaker.id for lecture in session.lectures for speaker in lecture.speakers})
