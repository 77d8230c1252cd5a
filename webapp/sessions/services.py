"""Sessions: creating, repeating, editing, rescheduling, cancelling, deleting and
publishing them, each change announced (webapp/events.py)."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import select, update

from webapp import events
from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
)
from webapp.people.models import User
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
)
from webapp.sessions.conflicts import _session_speaker_ids, check_session_slot
from webapp.sessions.models import (
    ChangeKind,
    LectureSession,
    SessionChange,
    SessionStatus,
    StreamMode,
)
from webapp.sessions.slots import Slot
from webapp.text import clean_line, clean_text

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
    stream_mode: StreamMode = StreamMode.EXTERNAL,
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
        stream_mode=stream_mode,
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
    stream_mode: StreamMode | None = None,
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
    if stream_mode is not None:
        session.stream_mode = stream_mode
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
    reason: str | None = None,
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
        reason=reason,
    )


def clean_join_url(url: str | None) -> str | None:
    """A join link must be a web address; anything else would not open from the button."""
    url = (url or "").strip()
    if not url:
        return None
    if not url.startswith(("https://", "http://")):
        raise InvalidInput(_("The join link must start with https://."), field="join_url")
    return url


# --- sessions (changes) ---------------------------------------------------------------------


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
    _announce_move(session, old_starts, old_ends, at=now, reason=change.reason)
    return change


def change_session(
    session: LectureSession,
    *,
    title: str,
    location: str | None,
    join_url: str | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str | None,
    accept_warnings: bool,
    by: User | None,
    now: datetime,
) -> None:
    """Edit a session and, when its times change, move it: a draft's session just moves, a
    published one is rescheduled (history, sequence + 1, participants told)."""
    if ends_at <= starts_at:
        raise InvalidInput(_("The end must be after the start."), field="ends_at")
    told = (starts_at, ends_at) != (session.starts_at, session.ends_at) and session.is_published
    update_session(
        session,
        title=title,
        location=location,
        join_url=join_url,
        starts_at=session.starts_at if told else starts_at,
        ends_at=session.ends_at if told else ends_at,
        accept_warnings=accept_warnings,
    )
    if told:
        reschedule_session(
            session,
            starts_at=starts_at,
            ends_at=ends_at,
            by=by,
            now=now,
            reason=reason,
            accept_warnings=accept_warnings,
        )


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
    session_id, series_id, title = session.id, session.series_id, session.title
    db.session.delete(session)
    db.session.flush()
    events.session_deleted.send(session_id=session_id, series_id=series_id, title=title)


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
