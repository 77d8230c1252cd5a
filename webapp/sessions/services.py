"""Sessions and lectures: creating, repeating, editing, rescheduling, cancelling, and the
conflict rules checked on every change."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from flask_babel import gettext as _
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import aliased, selectinload

from webapp import events
from webapp.bounds import date_in_range, date_range_message
from webapp.db import db
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
from webapp.series.services import active_enrollment, can_manage_series
from webapp.sessions.models import (
    ChangeKind,
    Lecture,
    LectureSession,
    SessionChange,
    SessionJoin,
    SessionStatus,
    lecture_speaker,
)
from webapp.text import clean_line, clean_text
from webapp.zones import local_to_utc

MAX_REPEAT = 100


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKDAYS = "weekdays"
    WEEKLY = "weekly"


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime


# --- slots in local time --------------------------------------------------------------------


def slot_from_local(day: date, start: time, end: time, tz_name: str) -> Slot:
    """A session on one local day from start to end (an end at or before start is refused)."""
    if end <= start:
        raise InvalidInput(_("The end time must be after the start time."), field="ends_at")
    return Slot(
        local_to_utc(day, start, tz_name, field="starts_at"),
        local_to_utc(day, end, tz_name, field="ends_at"),
    )


def plan_repeats(
    first_day: date, start: time, end: time, count: int, frequency: Frequency, tz_name: str
) -> list[Slot]:
    """The slots of a repeat: the same local times each day, across DST changes too."""
    if not 1 <= count <= MAX_REPEAT:
        raise InvalidInput(
            _("Create between 1 and %(max)d sessions at once.", max=MAX_REPEAT), field="count"
        )
    days: list[date] = []
    day = first_day
    while len(days) < count:
        if frequency != Frequency.WEEKDAYS or day.weekday() < 5:
            days.append(day)
        day += timedelta(weeks=1) if frequency == Frequency.WEEKLY else timedelta(days=1)
    return [slot_from_local(d, start, end, tz_name) for d in days]


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
        count, examples = participant_overlaps(series, slot)
        if count:
            raise NeedsConfirmation(
                [
                    _(
                        "%(count)d participant(s) of this series are enrolled in another "
                        "series with a session at the same time.",
                        count=count,
                    ),
                    *examples,
                ]
            )


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


# --- sessions -----------------------------------------------------------------------------


def create_session(
    series: Series,
    *,
    starts_at: datetime,
    ends_at: datetime,
    title: str = "",
    location: str | None = None,
    join_url: str | None = None,
    now: datetime | None = None,
    accept_warnings: bool = True,
) -> LectureSession:
    """Add a session; in a published series it is published at once."""
    check_session_slot(series, Slot(starts_at, ends_at), accept_warnings=accept_warnings)
    session = LectureSession(
        series=series,
        title=clean_line(title),
        starts_at=starts_at,
        ends_at=ends_at,
        location=clean_line(location or "") or None,
        join_url=clean_join_url(join_url),
        published_at=now if series.status != SeriesStatus.DRAFT else None,
    )
    db.session.add(session)
    db.session.flush()
    events.session_created.send(session_id=session.id, series_id=series.id)
    return session


def create_repeated_sessions(
    series: Series,
    slots: Sequence[Slot],
    *,
    title_template: str,
    location: str | None,
    join_url: str | None = None,
    now: datetime,
    accept_warnings: bool,
) -> list[LectureSession]:
    """Add several sessions at once; if any of them conflicts, none is added."""
    for index, slot in enumerate(slots):
        for other in slots[index + 1 :]:
            if slot.starts_at < other.ends_at and slot.ends_at > other.starts_at:
                raise Conflict(_("The repeated sessions overlap each other."), field="count")
    for slot in slots:
        check_session_slot(series, slot, accept_warnings=accept_warnings)
    sessions = []
    for number, slot in enumerate(slots, start=1):
        title = clean_line(title_template.replace("{n}", str(number))) if title_template else ""
        sessions.append(
            create_session(
                series,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                title=title,
                location=location,
                join_url=join_url,
                now=now,
            )
        )
    return sessions


def _shift_lectures(session: LectureSession, delta: timedelta) -> None:
    for lecture in session.lectures:
        if lecture.starts_at is not None and lecture.ends_at is not None:
            lecture.starts_at += delta
            lecture.ends_at += delta


def _check_lectures_fit(session: LectureSession, slot: Slot, delta: timedelta) -> None:
    for lecture in session.lectures:
        if lecture.starts_at is None or lecture.ends_at is None:
            continue
        if lecture.starts_at + delta < slot.starts_at or lecture.ends_at + delta > slot.ends_at:
            raise InvalidInput(
                _(
                    "The lecture 《%(title)s》 would no longer fit inside the session; shorten "
                    "or move the lecture first.",
                    title=lecture.title,
                ),
                field="ends_at",
            )


def _move(
    session: LectureSession, starts_at: datetime, ends_at: datetime, *, accept_warnings: bool
) -> None:
    """Move a session and the lectures with times of their own, after every check."""
    slot = Slot(starts_at, ends_at)
    delta = starts_at - session.starts_at
    check_session_slot(
        session.series,
        slot,
        speaker_ids=_session_speaker_ids(session),
        exclude_session_ids=[session.id],
        exclude_lecture_ids=[lecture.id for lecture in session.lectures],
        accept_warnings=accept_warnings,
    )
    _check_lectures_fit(session, slot, delta)
    _shift_lectures(session, delta)
    session.starts_at, session.ends_at = starts_at, ends_at


def update_session(
    session: LectureSession,
    *,
    title: str,
    location: str | None,
    starts_at: datetime,
    ends_at: datetime,
    accept_warnings: bool,
    join_url: str | None = None,
) -> None:
    """Edit a session; a published session's time changes only through rescheduling."""
    old_starts, old_ends = session.starts_at, session.ends_at
    moved = (starts_at, ends_at) != (old_starts, old_ends)
    if moved and session.is_published:
        raise Conflict(_("Participants can already see this session: reschedule it instead."))
    if moved:
        _move(session, starts_at, ends_at, accept_warnings=accept_warnings)
    new = (clean_line(title), clean_line(location or "") or None, clean_join_url(join_url))
    renamed = new != (session.title, session.location, session.join_url)
    if session.is_published and renamed:
        session.sequence += 1  # calendars must pick up the new summary, place or link
    session.title, session.location, session.join_url = new
    db.session.flush()
    if moved:
        _announce_move(session, old_starts, old_ends)
    if renamed:
        events.session_renamed.send(session_id=session.id, series_id=session.series_id)


def _announce_move(
    session: LectureSession,
    old_starts: datetime,
    old_ends: datetime,
    *,
    at: datetime | None = None,
) -> None:
    events.session_moved.send(
        session_id=session.id,
        series_id=session.series_id,
        old_starts_at=old_starts,
        old_ends_at=old_ends,
        new_starts_at=session.starts_at,
        new_ends_at=session.ends_at,
        sequence=session.sequence,
        published=session.is_published,
        at=at,
    )


def clean_join_url(url: str | None) -> str | None:
    """A join link must be a web address; anything else would not open from the button."""
    url = (url or "").strip()
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise InvalidInput(_("The join link must start with https://."), field="join_url")
    return url


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


def enrolled_users(series: Series) -> list[User]:
    """Participants currently enrolled (not waitlisted) in the series."""
    return list(
        db.session.scalars(
            select(User)
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(
                Enrollment.series_id == series.id,
                Enrollment.status == EnrollmentStatus.ENROLLED,
            )
            .order_by(User.id)
        ).all()
    )


def reschedule_session(
    session: LectureSession,
    *,
    starts_at: datetime,
    ends_at: datetime,
    by: User | None,
    now: datetime,
    reason: str | None = None,
    accept_warnings: bool = False,
) -> SessionChange:
    """Move a published session: same identity, sequence + 1, history, participants told."""
    if session.is_cancelled:
        raise Conflict(_("A cancelled session cannot be rescheduled."))
    if (starts_at, ends_at) == (session.starts_at, session.ends_at):
        raise InvalidInput(_("The new time is the same as the current one."), field="starts_at")
    old_starts, old_ends = session.starts_at, session.ends_at
    _move(session, starts_at, ends_at, accept_warnings=accept_warnings)
    session.sequence += 1
    change = SessionChange(
        session=session,
        kind=ChangeKind.RESCHEDULED,
        changed_by=by,
        changed_at=now,
        old_starts_at=old_starts,
        old_ends_at=old_ends,
        new_starts_at=starts_at,
        new_ends_at=ends_at,
        reason=clean_line(reason or "") or None,
        sequence=session.sequence,
    )
    db.session.add(change)
    db.session.flush()
    _announce_move(session, old_starts, old_ends, at=now)
    return change


def cancel_session(
    session: LectureSession, *, reason: str, by: User | None, now: datetime
) -> SessionChange:
    """Cancel a session with a reason; it stays (calendars show it as cancelled)."""
    if session.is_cancelled:
        raise Conflict(_("This session is already cancelled."))
    reason = clean_text(reason)
    if not reason:
        raise InvalidInput(_("Please give a reason for the cancellation."), field="reason")
    session.status = SessionStatus.CANCELLED
    session.cancel_reason = reason
    session.sequence += 1
    change = SessionChange(
        session=session,
        kind=ChangeKind.CANCELLED,
        changed_by=by,
        changed_at=now,
        old_starts_at=session.starts_at,
        old_ends_at=session.ends_at,
        new_starts_at=session.starts_at,
        new_ends_at=session.ends_at,
        reason=reason,
        sequence=session.sequence,
    )
    db.session.add(change)
    db.session.flush()
    events.session_cancelled.send(
        session_id=session.id,
        series_id=session.series_id,
        reason=reason,
        sequence=session.sequence,
        published=session.is_published,
        at=now,
    )
    return change


def delete_session(session: LectureSession) -> None:
    """Delete a session nobody has seen yet; a published one can only be cancelled."""
    if session.is_published:
        raise Conflict(_("Participants can already see this session: cancel it instead."))
    session_id, series_id = session.id, session.series_id
    db.session.delete(session)
    db.session.flush()
    events.session_deleted.send(session_id=session_id, series_id=series_id)


def publish_series(series: Series, *, now: datetime) -> None:
    """Make a draft (or archived) series visible to its participants."""
    if series.status == SeriesStatus.PUBLISHED:
        raise Conflict(_("This series is already published."))
    if not series.sessions:
        raise Conflict(_("Add at least one session before publishing."))
    series.status = SeriesStatus.PUBLISHED
    series.first_published_at = series.first_published_at or now
    publish_sessions(series, now=now)
    db.session.flush()
    events.series_published.send(
        series_id=series.id, session_ids=[session.id for session in series.sessions]
    )


def publish_sessions(series: Series, *, now: datetime) -> None:
    """Mark every session of the series as seen by participants from now on (one UPDATE,
    however many sessions)."""
    db.session.execute(
        update(LectureSession)
        .where(LectureSession.series_id == series.id, LectureSession.published_at.is_(None))
        .values(published_at=now)
    )


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
