"""A session in iCalendar: the one VEVENT builder, used by feeds, downloads and the iTIP
mails (PUBLISH for a download or reminder attachment, REQUEST with the raised SEQUENCE for
a move, CANCEL for a cancellation)."""

from email.utils import parseaddr
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from icalendar import Calendar, Event, vCalAddress, vText

from webapp.calendar.timezones import vtimezone_bytes
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


def book_title(title: str) -> str:
    """A lecture's title in 《》, once: a title typed with its own marks keeps them."""
    title = title.strip()
    if title.startswith("《") and title.endswith("》"):
        return title
    return f"《{title}》"


def session_description(session: LectureSession, join_url: str | None, page_url: str) -> str:
    """The lectures with their speakers, then the join link and the session's page (Google
    Calendar shows no URL property, so the page's address is written out as well)."""
    lines = []
    for lecture in session.lectures:
        speakers = "、".join(speaker.name for speaker in lecture.speakers)
        lines.append(f"{book_title(lecture.title)}{' ' + speakers if speakers else ''}")
    for url in dict.fromkeys(url for url in (join_url, page_url) if url):
        lines.append(url)
    return clean_text("\n".join(lines))


def cancelled_prefix() -> str:
    """Put before a cancelled session's title, for calendars that show no STATUS. Events
    are rendered once for every feed, so in the product's default language."""
    with force_locale(current_app.config["DEFAULT_LOCALE"]):
        return _("Cancelled: ")


@lru_cache(maxsize=8)
def _sender_parts(sender: str) -> tuple[str, str]:
    name, address = parseaddr(sender)
    return clean_line(name or "Yunketang"), address or sender


def _organizer() -> vCalAddress:
    """Who sends the session's invitations and updates: the product's own sender address
    (the same in feeds and in the iTIP mails, so calendars match one with the other)."""
    name, address = _sender_parts(current_app.config["MAIL_FROM"])
    organizer = vCalAddress(f"mailto:{address}")
    organizer.params["cn"] = vText(name)
    return organizer


def event_component(session: LectureSession, *, page_url: str, method: str = "PUBLISH") -> Event:
    """The session as a VEVENT, the one builder for feeds, downloads and mails: stable UID,
    SEQUENCE, times in the series' zone, the lectures and the join link in the description,
    the live room as CONFERENCE, the product's sender as ORGANIZER."""
    series = session.series
    tz = ZoneInfo(series.timezone)
    event = Event()
    event.add("uid", session_uid(session))
    # DTSTAMP is the session's last change, not the time of rendering: same data, same bytes.
    event.add("dtstamp", session.updated_at)
    event.add("created", session.created_at)
    event.add("last-modified", session.updated_at)
    event.add("sequence", session.sequence)
    event.add("dtstart", session.starts_at.astimezone(tz))
    event.add("dtend", session.ends_at.astimezone(tz))
    cancelled = session.is_cancelled or method == "CANCEL"
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    summary = session_summary(session)
    event.add("summary", clean_line(cancelled_prefix() + summary) if cancelled else summary)
    description = session_description(session, session.join_url, page_url)
    if session.is_cancelled and session.cancel_reason:
        description = clean_text(f"{session.cancel_reason}\n{description}")
    event.add("description", description)
    if session.location:
        event.add("location", vText(clean_line(session.location)))
    event.add("url", page_url)
    if session.join_url:
        event.add(
            "conference",
            session.join_url,
            parameters={"VALUE": "URI", "FEATURE": "VIDEO", "LABEL": clean_line(series.title)},
        )
    event.add("organizer", _organizer())
    event.add("categories", [clean_line(series.title)])
    return event


def render_event(session: LectureSession, *, page_url: str) -> bytes:
    return event_component(session, page_url=page_url).to_ical()


def session_calendar(session: LectureSession, *, method: str, page_url: str) -> bytes:
    """The session as a calendar of its own, with its time zone: the "add to calendar"
    download and a reminder's attachment (PUBLISH), a move (REQUEST, SEQUENCE raised) or a
    cancellation (CANCEL), per iTIP (RFC 5546)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    head = calendar.to_ical()
    end = b"END:VCALENDAR\r\n"
    zone = vtimezone_bytes(session.series.timezone, session.starts_at.year, session.ends_at.year)
    event = event_component(session, page_url=page_url, method=method).to_ical()
    return head[: -len(end)] + zone + event + end
