"""One session as an iCalendar object: PUBLISH for a download or reminder attachment,
REQUEST (with the raised SEQUENCE) for a move, CANCEL for a cancellation (iTIP)."""

from urllib.parse import urlsplit

from flask import current_app
from icalendar import Calendar, Event, vCalAddress, vText

from webapp.sessions.models import LectureSession
from webapp.text import clean_line, clean_text

PRODID = "-//Yunketang//云课堂//ZH"


def calendar_host() -> str:
    """The host name UIDs are scoped to (from BASE_URL, so they never change per request)."""
    return urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"


def session_uid(session: LectureSession) -> str:
    """A UID that stays the same through every reschedule of the session."""
    return f"session-{session.id}@{calendar_host()}"


# iCalendar TEXT may hold no control characters but HTAB (RFC 5545 3.3.11); the data is
# cleaned when it is stored, and these helpers make sure again, so the encoder is safe alone.


def session_summary(session: LectureSession) -> str:
    title = session.series.title
    return clean_line(f"{title} — {session.title}" if session.title else title)


def session_description(session: LectureSession, join_url: str | None) -> str:
    lines = []
    for lecture in session.lectures:
        speakers = "、".join(speaker.name for speaker in lecture.speakers)
        lines.append(f"《{lecture.title}》{' ' + speakers if speakers else ''}")
    if join_url:
        lines.append(join_url)
    return clean_text("\n".join(lines))


def session_calendar(
    session: LectureSession,
    *,
    method: str,
    url: str | None = None,
    organizer_email: str | None = None,
) -> bytes:
    """Serialize the session as a one-event calendar with the given iTIP method."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", session_uid(session))
    # DTSTAMP is the session's last change, not the time of rendering: same data, same bytes.
    event.add("dtstamp", session.updated_at)
    event.add("sequence", session.sequence)
    event.add("dtstart", session.starts_at)
    event.add("dtend", session.ends_at)
    event.add("summary", session_summary(session))
    description = session_description(session, url)
    if description:
        event.add("description", description)
    if session.location:
        event.add("location", vText(clean_line(session.location)))
    if url:
        event.add("url", url)
    event.add("status", "CANCELLED" if session.is_cancelled or method == "CANCEL" else "CONFIRMED")
    if organizer_email:
        organizer = vCalAddress(f"mailto:{organizer_email}")
        organizer.params["cn"] = vText(clean_line(session.series.title))
        event.add("organizer", organizer)
    calendar.add_component(event)
    return calendar.to_ical()
