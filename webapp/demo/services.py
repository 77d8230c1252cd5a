"""Load the demo data; safe to run any number of times."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select

from webapp.db import db
from webapp.demo import data
from webapp.people.models import Role, Speaker, Unit, UnitKind, User
from webapp.people.services import (
    create_user,
    find_user_by_identifier,
    grant_role,
    hash_password,
    set_password_hash,
)
from webapp.people.speakers import (
    create_speaker,
)
from webapp.people.units import (
    add_liaison,
    create_unit,
    find_unit,
)
from webapp.reminders.models import Channel, ChannelAccount
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.models import Enrollment, EnrollmentSource, Series, SeriesStatus, Visibility
from webapp.series.services import (
    create_series,
)
from webapp.sessions.lectures import (
    add_lecture,
)
from webapp.sessions.models import LectureSession, SessionStatus, StreamMode
from webapp.sessions.services import (
    create_session,
    publish_series,
    reschedule_session,
)
from webapp.zones import (
    zone,
)


@dataclass(frozen=True)
class DemoAccount:
    role: Role
    login: str
    password: str
    display_name: str


def first_session_day(today: date) -> date:
    """The next Thursday after today (a week ahead when today is a Thursday)."""
    days_ahead = (3 - today.weekday()) % 7 or 7
    return today + timedelta(days=days_ahead)


def load_demo(*, now: datetime) -> list[DemoAccount]:
    """Create whatever part of the demo is missing and return the demo accounts.

    Rows are found by their natural keys (unit name under its parent, email or mobile
    number, speaker name, series title, session and lecture title), so a second run adds
    nothing. Sessions that already lie in the past are moved forward so the demo always
    lies ahead.
    """
    units = _ensure_units()
    accounts = _ensure_accounts(units)
    speakers = _ensure_speakers()
    series = _ensure_series(accounts[Role.ORGANIZER], now=now)
    _ensure_sessions(series, speakers, now=now)
    if series.status == SeriesStatus.DRAFT:
        publish_series(series, now=now)
    participants = [
        user
        for cadre in data.cadres()
        if (user := find_user_by_identifier(cadre["phone"])) is not None
    ]
    enrolled = set(
        db.session.scalars(select(Enrollment.user_id).where(Enrollment.series_id == series.id))
    )
    for user in participants:
        if user.id not in enrolled:
            enroll(user, series, source=EnrollmentSource.IMPORT, now=now, notify=False)
    # 大瓦窑村's deputy secretary is the village's liaison (联络员) for its roster.
    add_liaison(units[data.LIAISON_UNIT], participants[data.LIAISON_INDEX])
    _ensure_wecom_ids(units[data.OFFICE], participants, now=now)
    db.session.flush()
    return [
        DemoAccount(role, user.email or user.phone, data.DEMO_PASSWORDS[role], user.display_name)
        for role, user in accounts.items()
    ]


def _ensure_wecom_ids(office: Unit, participants: list[User], *, now: datetime) -> None:
    """The township office's staff are on the township's WeCom: their ids are known, as
    if looked up by mobile number before (the village cadres are not, and get SMS)."""
    for user in participants:
        if (
            user.unit_id == office.id
            and db.session.get(ChannelAccount, (user.id, Channel.WECOM)) is None
        ):
            db.session.add(
                ChannelAccount(
                    user_id=user.id,
                    channel=Channel.WECOM,
                    phone=user.phone,
                    external_id=f"ykt{user.phone[-4:]}",
                    checked_at=now,
                )
            )


def _ensure_units() -> dict[str, Unit]:
    township = find_unit(data.TOWNSHIP) or create_unit(data.TOWNSHIP, UnitKind.TOWNSHIP)
    units = {data.TOWNSHIP: township}
    for name, kind in data.UNIT_KINDS.items():
        units[name] = find_unit(name, township) or create_unit(name, kind, township)
    return units


def _ensure_accounts(units: dict[str, Unit]) -> dict[Role, User]:
    participant_hash = None
    cadre_users = []
    for cadre in data.cadres():
        user = find_user_by_identifier(cadre["phone"])
        if user is None:
            user = create_user(
                display_name=cadre["display_name"],
                phone=cadre["phone"],
                email=cadre["email"],
                unit=units[cadre["unit"]],
                job_title=cadre["job_title"],
            )
        if user.password_hash is None:
            # One hash for all demo cadres: hashing 64 passwords would slow the demo load.
            participant_hash = participant_hash or hash_password(
                data.DEMO_PASSWORDS[Role.PARTICIPANT]
            )
            set_password_hash(user, participant_hash)
        cadre_users.append(user)

    accounts = {Role.PARTICIPANT: cadre_users[0]}
    for role, spec in ((Role.ADMIN, data.ADMIN), (Role.ORGANIZER, data.ORGANIZER)):
        user = find_user_by_identifier(spec["email"])
        if user is None:
            user = create_user(
                display_name=spec["display_name"],
                email=spec["email"],
                password=data.DEMO_PASSWORDS[role],
                roles=[role],
                unit=units[data.TOWNSHIP],
            )
        grant_role(user, role)
        accounts[role] = user
    return {role: accounts[role] for role in (Role.ADMIN, Role.ORGANIZER, Role.PARTICIPANT)}


def _ensure_speakers() -> dict[str, Speaker]:
    speakers = {}
    for key, (name, title, affiliation) in data.SPEAKERS.items():
        speaker = db.session.scalar(
            select(Speaker).where(Speaker.name == name, Speaker.affiliation == affiliation)
        )
        speakers[key] = speaker or create_speaker(name, title=title, affiliation=affiliation)
    return speakers


def _ensure_series(organizer: User, *, now: datetime) -> Series:
    series = db.session.scalar(select(Series).where(Series.title == data.SERIES_TITLE))
    if series is None:
        series = create_series(
            title=data.SERIES_TITLE,
            description=data.SERIES_DESCRIPTION,
            timezone=data.SERIES_TIMEZONE,
            visibility=Visibility.ENROLLED,
            organizer=organizer,
            now=now,
        )
    if organizer not in series.organizers:
        series.organizers.append(organizer)
    db.session.flush()
    return series


def _local(day: date, hour_minute: tuple[int, int], tz_name: str) -> datetime:
    return datetime.combine(day, time(*hour_minute), tzinfo=zone(tz_name))


def _ensure_sessions(series: Series, speakers: dict[str, Speaker], *, now: datetime) -> None:
    tz = data.SERIES_TIMEZONE
    first_day = first_session_day(now.astimezone(zone(tz)).date())
    existing = {session.title: session for session in series.sessions}
    for offset, (session_title, lectures) in enumerate(data.SESSIONS):
        day = first_day + timedelta(days=offset)
        starts_at = _local(day, data.SESSION_START, tz)
        ends_at = _local(day, data.SESSION_END, tz)
        session = existing.get(session_title)
        if session is None:
            session = create_session(
                series, starts_at=starts_at, ends_at=ends_at, title=session_title, now=now
            )
        elif session.ends_at <= now:
            # Keep the demo ahead: a real reschedule, so calendars see a move.
            reschedule_session(
                session,
                starts_at=starts_at,
                ends_at=ends_at,
                by=None,
                now=now,
                reason="演示数据更新",
                accept_warnings=True,
            )
        present = {lecture.title for lecture in session.lectures}
        for title, speaker_key, start, end in lectures:
            if title not in present:
                add_lecture(
                    session,
                    title=title,
                    speakers=[speakers[speaker_key]],
                    starts_at=_local(day, start, tz),
                    ends_at=_local(day, end, tz),
                )


LIVE_SESSION_TITLE = "开班直播演示"


def ensure_live_session(*, now: datetime) -> LectureSession:
    """The demo's live class: a self-hosted session from the current quarter hour for two
    hours, ahead of the three days (so it is the series' first session), made once and
    moved to now when it is over. `flask demo broadcast` puts a test pattern on the air."""
    series = db.session.scalar(select(Series).where(Series.title == data.SERIES_TITLE))
    if series is None:
        raise LookupError("the demo is not loaded: run `flask demo load` first")
    starts_at = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    ends_at = starts_at + timedelta(hours=2)
    session = next((s for s in series.sessions if s.title == LIVE_SESSION_TITLE), None)
    if session is None:
        session = create_session(
            series,
            starts_at=starts_at,
            ends_at=ends_at,
            title=LIVE_SESSION_TITLE,
            location="云课堂直播",
            now=now,
            stream_mode=StreamMode.HOSTED,
        )
    elif session.ends_at <= now or session.status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        # A new class today: a fresh session (the old one keeps its history and replay).
        session.title = f"{LIVE_SESSION_TITLE}（{session.starts_at:%m-%d %H:%M}）"
        db.session.flush()
        return ensure_live_session(now=now)
    db.session.flush()
    return session
