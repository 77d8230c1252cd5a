"""Time zones, in one place: which zone applies (a person's, a series', the site's
default), which names are valid, and turning a wall-clock time in a zone into UTC (refusing
times a clock change skips). Formatting for readers is in webapp.i18n; VTIMEZONE components
for calendars in webapp.calendar.timezones."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import current_app
from flask_babel import gettext as _

from webapp.bounds import date_in_range, date_range_message
from webapp.errors import InvalidInput


def zone(name: str | None) -> ZoneInfo:
    """Return the named IANA zone, or the site default for an empty or unknown name."""
    try:
        return ZoneInfo(name or current_app.config["DEFAULT_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(current_app.config["DEFAULT_TIMEZONE"])


def is_valid_timezone(name: str) -> bool:
    return name in available_timezones()


def user_timezone_name(user) -> str:
    if user is not None and user.is_authenticated and user.timezone:
        return user.timezone
    return current_app.config["DEFAULT_TIMEZONE"]


def user_zone(user) -> str:
    """The zone a person reads times in (any object with .timezone): theirs, else the site's."""
    return user.timezone or current_app.config["DEFAULT_TIMEZONE"]


def local_to_utc(day: date, clock: time, tz_name: str, *, field: str = "starts_at") -> datetime:
    """Turn a wall-clock time in the series' zone into UTC; refuse times a DST change skips
    and dates outside the supported years."""
    if not date_in_range(day):
        raise InvalidInput(str(date_range_message()), field=field)
    tz = zone(tz_name)
    local = datetime.combine(day, clock, tzinfo=tz)
    as_utc = local.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise InvalidInput(
            _(
                "%(time)s does not exist on %(day)s in %(zone)s (the clocks change).",
                time=clock.strftime("%H:%M"),
                day=day.isoformat(),
                zone=tz_name,
            ),
            field=field,
        )
    return as_utc


def day_start(moment: datetime, tz_name: str) -> datetime:
    """Midnight of the moment's day in the zone, as an aware UTC datetime."""
    local = moment.astimezone(zone(tz_name))
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=local.tzinfo)
    return midnight.astimezone(UTC)
