"""Pure builders from domain objects to iCalendar bytes, on the icalendar library.

Each session is rendered once into a VEVENT fragment, each time zone once into a VTIMEZONE;
a feed is its header, its time zones and its events put together. No random values and no
time of rendering appear anywhere, so the same data gives the same bytes (and ETag)."""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from icalendar import Alarm, Calendar, vDuration, vText

from webapp.calendar.ical import PRODID
from webapp.calendar.timezones import vtimezone_bytes
from webapp.text import clean_line, clean_text

REFRESH = timedelta(hours=1)
END = b"END:VCALENDAR\r\n"


@dataclass(frozen=True)
class FeedHeader:
    name: str
    timezone: str  # X-WR-TIMEZONE: the zone the calendar is meant to be shown in
    description: str | None = None


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


def etag_for(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:40]
