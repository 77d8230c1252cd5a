"""Pure builders from domain objects to iCalendar bytes, on the icalendar library.

Each session is rendered once into a VEVENT fragment, each time zone once into a VTIMEZONE;
a feed is its header, its time zones and its events put together. No random values and no
time of rendering appear anywhere, so the same data gives the same bytes (and ETag)."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, vCalAddress, vDuration, vText

from webapp.calendar.ical import PRODID, session_description, session_summary, session_uid
from webapp.calendar.timezones import vtimezone_bytes
from webapp.sessions.models import LectureSession
from webapp.text import clean_line, clean_text

REFRESH = timedelta(hours=1)
END = b"END:VCALENDAR\r\n"


@dataclass(frozen=True)
class FeedHeader:
    name: str
    timezone: str  # X-WR-TIMEZONE: the zone the calendar is meant to be shown in
    description: str | None = None


def event_component(session: LectureSession, *, page_url: str) -> Event:
    """The session as a VEVENT: stable UID, SEQUENCE, times in the series' zone."""
    series = session.series
    tz = ZoneInfo(series.timezone)
    event = Event()
    event.add("uid", session_uid(session))
    event.add("dtstamp", session.updated_at)
    event.add("created", session.created_at)
    event.add("last-modified", session.updated_at)
    event.add("sequence", session.sequence)
    event.add("dtstart", session.starts_at.astimezone(tz))
    event.add("dtend", session.ends_at.astimezone(tz))
    event.add("status", "CANCELLED" if session.is_cancelled else "CONFIRMED")
    event.add("summary", session_summary(session))
    description = session_description(session, session.join_url or page_url)
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
    organizer = next((o for o in series.organizers if o.email), None)
    if organizer is not None:
        address = vCalAddress(f"mailto:{organizer.email}")
        address.params["cn"] = vText(clean_line(organizer.display_name))
        event.add("organizer", address)
    event.add("categories", [clean_line(series.title)])
    return event


def render_event(session: LectureSession, *, page_url: str) -> bytes:
    return event_component(session, page_url=page_url).to_ical()


def alarm_block(minutes: int, summary: str) -> bytes:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", clean_line(summary))
    alarm.add("trigger", -timedelta(minutes=minutes))
    return alarm.to_ical()


def with_alarm(fragment: bytes, minutes: int, summary: str) -> bytes:
    """Put a VALARM inside a rendered VEVENT (a per-user option)."""
    end = b"END:VEVENT\r\n"
    return fragment[: -len(end)] + alarm_block(minutes, summary) + end


def header_bytes(header: FeedHeader) -> bytes:
    """The calendar's own properties, rendered by the library, without its END line."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    # TEXT values, escaped: the library would write an unknown or X- property as it is.
    calendar.add("name", vText(clean_line(header.name)))
    calendar.add("x-wr-calname", vText(clean_line(header.name)))
    calendar.add("x-wr-timezone", header.timezone)
    if header.description:
        calendar.add("x-wr-caldesc", vText(clean_text(header.description)))
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    rendered = calendar.to_ical()
    assert rendered.endswith(END)
    return rendered[: -len(END)]


def assemble(
    header: FeedHeader, timezones: Iterable[tuple[str, int]], events: Iterable[bytes]
) -> bytes:
    """Header, one VTIMEZONE per zone used (covering every year its events fall in), the
    events, END."""
    years: dict[str, set[int]] = {}
    for name, year in timezones:
        years.setdefault(name, set()).add(year)
    parts = [header_bytes(header)]
    parts.extend(vtimezone_bytes(name, min(ys), max(ys)) for name, ys in sorted(years.items()))
    parts.extend(events)
    parts.append(END)
    return b"".join(parts)


def single_session_calendar(session: LectureSession, *, page_url: str) -> bytes:
    """A one-event calendar for the “add to calendar” download."""
    header = FeedHeader(name=session_summary(session), timezone=session.series.timezone)
    return assemble(
        header,
        [(session.series.timezone, session.starts_at.year)],
        [render_event(session, page_url=page_url)],
    )


def etag_for(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:40]
