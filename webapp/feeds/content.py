"""What a feed holds: which sessions, under which title and zone, rendered as stored
event fragments and assembled into a calendar."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from webapp.calendar.ical import (
    render_event,
)
from webapp.db import db, upsert
from webapp.feeds.builder import (
    FeedHeader,
    assemble,
    with_alarm,
)
from webapp.feeds.models import EventFragment
from webapp.people.models import Speaker, Unit, User
from webapp.people.units import (
    unit_and_descendant_ids,
)
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
    series_organizer,
)
from webapp.sessions.models import Lecture, LectureSession, SessionStatus, lecture_speaker
from webapp.urls import public_urls

# --- what a feed holds -----------------------------------------------------------------------

CANCELLED_KEPT = timedelta(days=30)
# The VEVENT builder's version: raised when what it writes changes, so that fragments
# stored by an earlier release are rendered again (2: 【已取消】 before a cancelled
# session's title, the session page's address in the description).
RENDER_VERSION = "2"


def _feed_series_ids(key: str):
    """A subquery of the series whose sessions a feed holds."""
    kind, _sep, ident = key.partition(":")
    target = int(ident)
    if kind == "user":
        return select(Enrollment.series_id).where(
            Enrollment.user_id == target, Enrollment.status == EnrollmentStatus.ENROLLED
        )
    if kind == "organizer":
        return select(series_organizer.c.series_id).where(series_organizer.c.user_id == target)
    if kind == "series":
        return select(Series.id).where(Series.id == target)
    if kind == "unit":
        unit = db.session.get(Unit, target)
        unit_ids = unit_and_descendant_ids(unit) if unit else []
        return (
            select(Enrollment.series_id)
            .join(User, User.id == Enrollment.user_id)
            .where(User.unit_id.in_(unit_ids), Enrollment.status == EnrollmentStatus.ENROLLED)
        )
    raise ValueError(key)


def _feed_rows(key: str, *, now: datetime):
    """(session id, start, zone, stored fragment or None) for every event of a feed."""
    return _rows_in(_feed_series_ids(key), now=now)


def _rows_in(series_ids, *, now: datetime, upcoming: bool = False):
    kept = (
        (LectureSession.status != SessionStatus.CANCELLED, LectureSession.ends_at > now)
        if upcoming
        else ()
    )
    return db.session.execute(
        select(LectureSession.id, LectureSession.starts_at, Series.timezone, EventFragment.body)
        .join(Series, Series.id == LectureSession.series_id)
        .outerjoin(
            EventFragment,
            and_(
                EventFragment.session_id == LectureSession.id,
                EventFragment.version == RENDER_VERSION,
            ),
        )
        .where(
            LectureSession.series_id.in_(series_ids),
            Series.status != SeriesStatus.DRAFT,
            LectureSession.published_at.is_not(None),
            or_(
                LectureSession.status != SessionStatus.CANCELLED,
                LectureSession.ends_at > now - CANCELLED_KEPT,
            ),
            *kept,
        )
        .order_by(LectureSession.starts_at, LectureSession.id)
    ).all()


def feed_sessions(key: str, *, now: datetime) -> list["EventSource"]:
    """What a feed's events are rendered from, in the feed's order."""
    ids = [row[0] for row in _feed_rows(key, now=now)]
    return _load_sessions(ids)


@dataclass(frozen=True)
class SeriesFacts:
    title: str
    timezone: str


@dataclass(frozen=True)
class SpeakerFacts:
    name: str


@dataclass(frozen=True)
class LectureFacts:
    title: str
    speakers: list[SpeakerFacts]


@dataclass(frozen=True)
class EventSource:
    """A session as the VEVENT builder reads it (the attributes of LectureSession it uses),
    read with two plain queries: no ORM objects, identity map or relationship loading for
    the thousand events of a cold render."""

    id: int
    series: SeriesFacts
    title: str
    location: str | None
    join_url: str | None
    starts_at: datetime
    ends_at: datetime
    status: SessionStatus
    cancel_reason: str | None
    sequence: int
    created_at: datetime
    updated_at: datetime
    lectures: list[LectureFacts] = field(default_factory=list)

    @property
    def is_cancelled(self) -> bool:
        return self.status == SessionStatus.CANCELLED


def _load_sessions(ids: list[int]) -> list[EventSource]:
    if not ids:
        return []
    speakers: dict[int, list[SpeakerFacts]] = {}
    for lecture_id, name in db.session.execute(
        select(lecture_speaker.c.lecture_id, Speaker.name)
        .join(Speaker, Speaker.id == lecture_speaker.c.speaker_id)
        .join(Lecture, Lecture.id == lecture_speaker.c.lecture_id)
        .where(Lecture.session_id.in_(ids))
        .order_by(lecture_speaker.c.lecture_id, Speaker.id)
    ):
        speakers.setdefault(lecture_id, []).append(SpeakerFacts(name))
    lectures: dict[int, list[LectureFacts]] = {}
    for lecture_id, session_id, title in db.session.execute(
        select(Lecture.id, Lecture.session_id, Lecture.title)
        .where(Lecture.session_id.in_(ids))
        .order_by(Lecture.session_id, Lecture.position)
    ):
        lectures.setdefault(session_id, []).append(
            LectureFacts(title, speakers.get(lecture_id, []))
        )
    series: dict[int, SeriesFacts] = {}
    sources = {}
    for row in db.session.execute(
        select(
            LectureSession.id,
            LectureSession.series_id,
            Series.title.label("series_title"),
            Series.timezone,
            LectureSession.title,
            LectureSession.location,
            LectureSession.join_url,
            LectureSession.starts_at,
            LectureSession.ends_at,
            LectureSession.status,
            LectureSession.cancel_reason,
            LectureSession.sequence,
            LectureSession.created_at,
            LectureSession.updated_at,
        )
        .join(Series, Series.id == LectureSession.series_id)
        .where(LectureSession.id.in_(ids))
    ):
        facts = series.setdefault(row.series_id, SeriesFacts(row.series_title, row.timezone))
        sources[row.id] = EventSource(
            row.id, facts, row.title, row.location, row.join_url, row.starts_at, row.ends_at,
            row.status, row.cancel_reason, row.sequence, row.created_at, row.updated_at,
            lectures.get(row.id, []),
        )  # fmt: skip
    return [sources[session_id] for session_id in ids if session_id in sources]


def user_header(user: User, *, organizer: bool = False) -> FeedHeader:
    """A person's feed is named and zoned for them, in their language."""
    with force_locale(user.locale or current_app.config["DEFAULT_LOCALE"]):
        name = (
            _("Yunketang · series I organize")
            if organizer
            else _("Yunketang · %(name)s's schedule", name=user.display_name)
        )
    return FeedHeader(name=name, timezone=user.timezone or current_app.config["DEFAULT_TIMEZONE"])


def feed_header(key: str) -> tuple[FeedHeader, User | None]:
    kind, _sep, ident = key.partition(":")
    default_zone = current_app.config["DEFAULT_TIMEZONE"]
    if kind in ("user", "organizer"):
        user = db.session.get(User, int(ident))
        return user_header(user, organizer=kind == "organizer"), user
    if kind == "series":
        series = db.session.get(Series, int(ident))
        return FeedHeader(
            name=series.title, timezone=series.timezone, description=series.description or None
        ), None
    unit = db.session.get(Unit, int(ident))
    with force_locale(current_app.config["DEFAULT_LOCALE"]):
        name = _("Yunketang · %(unit)s", unit=unit.name)
    return FeedHeader(name=name, timezone=default_zone), None


def _page_urls(sessions: Iterable[EventSource]) -> dict[int, str]:
    urls = public_urls()
    return {
        s.id: urls.build("sessions.detail", {"session_id": s.id}, force_external=True)
        for s in sessions
    }


def render_fragments(ids: list[int]) -> dict[int, bytes]:
    """Render the VEVENTs that have no stored fragment (the library runs only here)."""
    sessions = _load_sessions(ids)
    urls = _page_urls(sessions)
    rendered = {s.id: render_event(s, page_url=urls[s.id]) for s in sessions}
    # Stored in bulk: one statement per batch, not a SELECT and a write per event.
    upsert(
        EventFragment,
        [
            {"session_id": session_id, "version": RENDER_VERSION, "body": body}
            for session_id, body in rendered.items()
        ],
        ["session_id"],
    )
    return rendered


def render_feed(key: str, *, now: datetime) -> bytes:
    """The whole feed: stored fragments, the few missing ones rendered, cached zones."""
    header, user = feed_header(key)
    rows = _complete(_feed_rows(key, now=now))
    alarm = user.feed_alarm_minutes if user is not None and key.startswith("user:") else None
    return _assemble_rows(header, rows, alarm)


def upcoming_calendar(key: str, *, now: datetime) -> bytes:
    """The feed's sessions not over yet (cancelled ones left out) as a file to import once:
    for calendars that cannot subscribe to a link."""
    header, _user = feed_header(key)
    rows = _complete(_rows_in(_feed_series_ids(key), now=now, upcoming=True))
    return _assemble_rows(header, rows, None)


def _complete_alone(rows) -> list[tuple] | Exception:
    """_complete() in a savepoint; the error instead of the rows when rendering failed."""
    try:
        with db.session.begin_nested():
            return _complete(rows)
    except SQLAlchemyError:
        raise
    except Exception as error:
        return error


def _complete(rows) -> list[tuple]:
    """Rows with every fragment present (the missing ones rendered now)."""
    missing = [row[0] for row in rows if row[3] is None]
    fresh = render_fragments(missing) if missing else {}
    return [(r[0], r[1], r[2], r[3] if r[3] is not None else fresh[r[0]]) for r in rows]


def _assemble_rows(header: FeedHeader, rows: list[tuple], alarm: int | None) -> bytes:
    fragments = [row[3] for row in rows]
    if alarm:
        fragments = [with_alarm(f, alarm, header.name) for f in fragments]
    return assemble(header, [(row[2], row[1].year) for row in rows], fragments)
