"""Outgoing webhooks hear what the domains announce (webapp/events.py) and queue the event
for the webhooks that want it, in the change's own transaction: a change that rolls back
sends nothing, and one that commits is sent (by the worker, with retries)."""

from datetime import datetime

from webapp import events
from webapp.db import db, utcnow
from webapp.hooks.services import announce
from webapp.sessions.models import LectureSession
from webapp.urls import public_url


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _session(session_id: int) -> dict:
    session = db.session.get(LectureSession, session_id)
    return {
        "id": session.id,
        "series_id": session.series_id,
        "series_title": session.series.title,
        "title": session.title,
        "starts_at": _moment(session.starts_at),
        "ends_at": _moment(session.ends_at),
        "time_zone": session.series.timezone,
        "status": str(session.status),
        "sequence": session.sequence,
        "location": session.location,
        "url": public_url("sessions.detail", session_id=session.id),
        "published": session.is_published,
    }


def _announce(event_type: str, session_id: int, series_id: int, **extra) -> None:
    announce(
        event_type,
        lambda: {"session": _session(session_id), **extra},
        now=utcnow(),
        series_id=series_id,
        session_id=session_id,
    )


@events.session_created.connect
def _created(_sender, *, session_id: int, series_id: int, **_facts) -> None:
    _announce("session.created", session_id, series_id)


@events.session_moved.connect
def _moved(
    _sender,
    *,
    session_id: int,
    series_id: int,
    old_starts_at: datetime,
    old_ends_at: datetime,
    reason: str | None = None,
    **_facts,
) -> None:
    previous = {"starts_at": _moment(old_starts_at), "ends_at": _moment(old_ends_at)}
    _announce("session.rescheduled", session_id, series_id, previous=previous, reason=reason)


@events.session_cancelled.connect
def _cancelled(_sender, *, session_id: int, series_id: int, reason: str = "", **_facts) -> None:
    _announce("session.cancelled", session_id, series_id, reason=reason)


@events.session_live.connect
def _live(_sender, *, session_id: int, series_id: int, by_hand: bool = False, **_facts) -> None:
    _announce("session.live", session_id, series_id, by_hand=by_hand)


@events.session_ended.connect
def _ended(_sender, *, session_id: int, series_id: int, by_hand: bool = False, **_facts) -> None:
    _announce("session.ended", session_id, series_id, by_hand=by_hand)


def _enrollment(series_id: int, user_id: int, status: str, **extra) -> None:
    data = {"series_id": series_id, "user_id": user_id, "status": status, **extra}
    announce("enrollment.changed", lambda: data, now=utcnow(), series_id=series_id)


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
    _enrollment(series_id, user_id, "waitlisted" if waitlisted else "enrolled", promoted=promoted)


@events.enrollment_ended.connect
def _left(_sender, *, series_id: int, user_id: int, **_facts) -> None:
    _enrollment(series_id, user_id, "ended")


@events.attendance_finalized.connect
def _final(
    _sender, *, session_id: int, series_id: int, counts: dict, by_hand: bool = False, **_facts
) -> None:
    counts = {str(status): number for status, number in counts.items()}
    _announce("attendance.finalized", session_id, series_id, counts=counts, by_hand=by_hand)
