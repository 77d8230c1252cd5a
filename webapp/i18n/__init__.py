"""Languages (Simplified Chinese by default, English) and time formatting in a series' zone."""

from datetime import date, datetime, timedelta

from babel import Locale
from babel.dates import (
    format_date,
    format_interval,
    format_time,
    format_timedelta,
    get_timezone_gmt,
)
from flask import current_app, has_request_context, request
from flask_babel import Babel, get_locale, gettext
from flask_login import current_user

from webapp.zones import user_timezone_name, zone

babel = Babel()


def select_locale() -> str:
    """Pick the language: the user's saved choice, this browser's choice, Accept-Language.
    An API call: its Accept-Language first (a program says what it wants each time)."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        # Workers and commands: callers that write to one user wrap with force_locale.
        return current_app.config["DEFAULT_LOCALE"]
    if request.path.startswith("/api/") and (asked := _accepted(languages)):
        return asked
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    cookie = request.cookies.get(current_app.config["LOCALE_COOKIE_NAME"])
    if cookie in languages:
        return cookie
    return _accepted(languages) or current_app.config["DEFAULT_LOCALE"]


def _accepted(languages) -> str | None:
    # Match "zh", "zh-CN", "zh-Hans" to zh_CN and "en-US" to en.
    candidates = {language.split("_")[0]: language for language in languages}
    for accepted, _quality in request.accept_languages:
        base = accepted.replace("-", "_").split("_")[0].lower()
        if base in candidates:
            return candidates[base]
    return None


def current_language() -> str:
    """The active language as one of the configured codes (zh_CN, en).

    Babel expands zh_CN to zh_Hans_CN, which is why the Chinese catalog lives in
    translations/zh_Hans_CN while settings, cookies and users keep the short code."""
    active = get_locale()
    for code in current_app.config["LANGUAGES"]:
        if Locale.parse(code) == active:
            return code
    return current_app.config["DEFAULT_LOCALE"]


def zone_label(moment: datetime, tz_name: str) -> str:
    """Name a zone as users read it: its offset at that moment and its IANA name."""
    local = moment.astimezone(zone(tz_name))
    return f"{get_timezone_gmt(local, 'long', locale=str(get_locale()))} {tz_name}"


def format_day(moment: datetime | date, tz_name: str) -> str:
    """The full local date, e.g. 2026年12月3日星期四 / Thursday, December 3, 2026."""
    day = moment.astimezone(zone(tz_name)).date() if isinstance(moment, datetime) else moment
    return format_date(day, "full", locale=str(get_locale()))


def format_clock(moment: datetime, tz_name: str) -> str:
    return format_time(moment, "HH:mm", tzinfo=zone(tz_name), locale=str(get_locale()))


def viewer_zone() -> str | None:
    """The zone the person reading this page lives in (theirs, else the site's); None
    outside a request (mails and messages, which name the zone always)."""
    if not has_request_context():
        return None
    return user_timezone_name(current_user)


def format_time_range(starts_at: datetime, ends_at: datetime, tz_name: str) -> str:
    """A session's time in the given zone; the zone is named where it is not the
    reader's own."""
    tz = zone(tz_name)
    locale = str(get_locale())
    if starts_at.astimezone(tz).date() == ends_at.astimezone(tz).date():
        text = (
            f"{format_day(starts_at, tz_name)} "
            f"{format_interval(starts_at, ends_at, 'Hm', tzinfo=tz, locale=locale)}"
        )
    else:
        text = (
            f"{format_day(starts_at, tz_name)} {format_clock(starts_at, tz_name)} – "
            f"{format_day(ends_at, tz_name)} {format_clock(ends_at, tz_name)}"
        )
    if tz_name == viewer_zone():
        return text
    return f"{text} ({zone_label(starts_at, tz_name)})"


def format_start(moment: datetime, tz_name: str, *, now: datetime) -> str:
    """When something starts, said as a person would at `now`: 今天 16:00, 明天 09:30, or
    the full date and time."""
    tz = zone(tz_name)
    day, today = moment.astimezone(tz).date(), now.astimezone(tz).date()
    clock = format_clock(moment, tz_name)
    if day == today:
        return gettext("today at %(time)s", time=clock)
    if day == today + timedelta(days=1):
        return gettext("tomorrow at %(time)s", time=clock)
    return f"{format_day(moment, tz_name)} {clock}"


def format_until(moment: datetime, *, now: datetime) -> str:
    """How long from `now` until the moment, in words (3分钟后 / in 3 minutes). Computed when
    a message is sent, so a delay can never make it false."""
    seconds = (moment - now).total_seconds()
    if seconds < 60:
        return gettext("in less than a minute")
    minutes = timedelta(minutes=round(seconds / 60))
    duration = format_timedelta(
        minutes, locale=str(get_locale()), threshold=2, granularity="minute"
    )
    return gettext("in %(duration)s", duration=duration)


def format_offset(minutes: int) -> str:
    """How long before a session, e.g. 1天前 / 15 minutes before."""
    duration = format_timedelta(timedelta(minutes=minutes), locale=str(get_locale()), threshold=1.1)
    return gettext("%(duration)s before", duration=duration)


def format_elapsed(delta: timedelta) -> str:
    """How long ago, in words: 2 小时 / 2 hours."""
    return format_timedelta(delta, locale=str(get_locale()))


def init_app(app) -> None:
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals.update(
        format_time_range=format_time_range,
        format_day=format_day,
        format_clock=format_clock,
        zone_label=zone_label,
        current_language=current_language,
        reminder_offset=format_offset,
        format_elapsed=format_elapsed,
        format_start=format_start,
        format_until=format_until,
    )
