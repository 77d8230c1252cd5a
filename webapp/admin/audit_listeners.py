"""The audit log hears what the domains announce (webapp/events.py) and writes a row for
each change an admin may have to account for, in the change's own transaction. Changes no
domain announces are recorded by their services (webapp/audit.py)."""

from datetime import datetime

from webapp import events
from webapp.audit import record
from webapp.db import db
from webapp.people.models import User
from webapp.series.models import Series
from webapp.sessions.models import LectureSession
from webapp.zones import zone


def _local(moment: datetime, tz_name: str) -> str:
    return moment.astimezone(zone(tz_name)).strftime("%Y-%m-%d %H:%M")


def _session_label(session: LectureSession) -> str:
    when = _local(session.starts_at, session.series.timezone)
    return f"{session.series.title} · {session.title or when}"


def _series_title(series_id: int) -> str:
    series = db.session.get(Series, series_id)
    return series.title if series else f"#{series_id}"


def _session_entry(action: str, session_id: int, series_id: int, details: dict) -> None:
    session = db.session.get(LectureSession, session_id)
    record(
        action,
        object_type="session",
        object_id=session_id,
        label=_session_label(session),
        series_id=series_id,
        details=details,
    )


@events.session_created.connect
def _created(_sender, *, session_id: int, series_id: int, **_facts) -> None:
    session = db.session.get(LectureSession, session_id)
    times = {"starts_at": session.starts_at.isoformat(), "ends_at": session.ends_at.isoformat()}
    _session_entry("session.created", session_id, series_id, times)


@events.session_moved.connect
def _moved(
    _sender,
    *,
    session_id: int,
    series_id: int,
    old_starts_at: datetime,
    old_ends_at: datetime,
    new_starts_at: datetime,
    new_ends_at: datetime,
    reason: str | None = None,
    **_facts,
) -> None:
    details = {
        "starts_at": [old_starts_at.isoformat(), new_starts_at.isoformat()],
        "ends_at": [old_ends_at.isoformat(), new_ends_at.isoformat()],
        "reason": reason or "",
    }
    _session_entry("session.rescheduled", session_id, series_id, details)


@events.session_cancelled.connect
def _cancelled(_sender, *, session_id: int, series_id: int, reason: str = "", **_facts) -> None:
    _session_entry("session.cancelled", session_id, series_id, {"reason": reason or ""})


@events.session_renamed.connect
def _renamed(_sender, *, session_id: int, series_id: int, **_facts) -> None:
    session = db.session.get(LectureSession, session_id)
    details = {"title": session.title, "location": session.location or ""}
    _session_entry("session.changed", session_id, series_id, details)


@events.lecture_changed.connect
def _agenda(
    _sender,
    *,
    session_id: int,
    series_id: int,
    lecture: str = "",
    old_speakers=(),
    new_speakers=(),
    **_facts,
) -> None:
    details = {"lecture": lecture}
    if list(old_speakers) != list(new_speakers):
        details["speakers"] = [list(old_speakers), list(new_speakers)]
    _session_entry("lecture.changed", session_id, series_id, details)


@events.session_deleted.connect
def _deleted(_sender, *, session_id: int, series_id: int, title: str = "", **_facts) -> None:
    record(
        "session.deleted",
        object_type="session",
        object_id=session_id,
        label=f"{_series_title(series_id)} · {title}" if title else _series_title(series_id),
        series_id=series_id,
    )


def _series_listener(action: str):
    def listener(_sender, *, series_id: int, **_facts) -> None:
        record(
            action,
            object_type="series",
            object_id=series_id,
            label=_series_title(series_id),
            series_id=series_id,
        )

    return listener


# blinker keeps weak references: the listeners are kept here.
_SERIES_LISTENERS = {
    signal: _series_listener(action)
    for signal, action in (
        (events.series_changed, "series.changed"),
        (events.series_published, "series.published"),
        (events.series_archived, "series.archived"),
    )
}
for _signal, _listener in _SERIES_LISTENERS.items():
    _signal.connect(_listener)


def _person(user_id: int) -> str:
    user = db.session.get(User, user_id)
    return user.display_name if user else f"#{user_id}"


@events.enrollment_started.connect
def _enrolled(
    _sender,
    *,
    series_id: int,
    user_id: int,
    waitlisted: bool = False,
    promoted: bool = False,
    **_facts,
) -> None:
    record(
        "enrollment.started",
        object_type="user",
        object_id=user_id,
        label=f"{_person(user_id)} · {_series_title(series_id)}",
        series_id=series_id,
        details={"waitlisted": waitlisted, "promoted": promoted},
    )


@events.enrollment_ended.connect
def _left(_sender, *, series_id: int, user_id: int, **_facts) -> None:
    record(
        "enrollment.ended",
        object_type="user",
        object_id=user_id,
        label=f"{_person(user_id)} · {_series_title(series_id)}",
        series_id=series_id,
    )


@events.attendance_finalized.connect
def _recomputed(
    _sender, *, session_id: int, series_id: int, counts: dict, by_hand: bool = False, **_facts
) -> None:
    if not by_hand:
        return  # the worker's own finalisation is routine, not a change anyone made
    counts = {str(key): value for key, value in counts.items()}
    _session_entry("attendance.recomputed", session_id, series_id, {"counts": counts})
