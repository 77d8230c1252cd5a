"""VTIMEZONE components in the yearly-rule form that Outlook imports.

The icalendar library's own helper writes each transition as a list of onset dates (RDATE);
Outlook and Thunderbird's parser misread that for zones with daylight saving. Here each
observance gets one DTSTART and an RRULE (e.g. the last Sunday of March), derived from the
time-zone database's transitions in a reference year."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

RULE_EPOCH_YEAR = 1970  # the observances' DTSTART year, as Outlook itself writes them


@dataclass(frozen=True)
class Transition:
    local_before: datetime  # wall-clock time just before the change (naive)
    offset_from: timedelta
    offset_to: timedelta
    name: str
    is_dst: bool


def _offset_at(tz: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(tz).utcoffset()


def transitions(tz_name: str, year: int) -> list[Transition]:
    """The offset changes of a zone in one year, found on the UTC time line."""
    tz = ZoneInfo(tz_name)
    found = []
    start = datetime(year, 1, 1, tzinfo=UTC) - timedelta(days=1)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) + timedelta(days=1)
    previous = _offset_at(tz, start)
    probe = start
    while probe < end:
        probe += timedelta(days=1)
        offset = _offset_at(tz, probe)
        if offset == previous:
            continue
        low, high = probe - timedelta(days=1), probe  # the change lies in (low, high]
        while high - low > timedelta(minutes=1):
            middle = low + (high - low) / 2
            if _offset_at(tz, middle) == previous:
                low = middle
            else:
                high = middle
        onset = high.replace(second=0, microsecond=0)
        local = onset.astimezone(tz)
        found.append(
            Transition(
                local_before=(onset + previous).replace(tzinfo=None),
                offset_from=previous,
                offset_to=offset,
                name=local.tzname() or "",
                is_dst=bool(local.dst()),
            )
        )
        previous = offset
    return [t for t in found if t.local_before.year == year]


def _by_day(day: date) -> str:
    """The RRULE BYDAY of a date: 2SU for the second Sunday, -1SU for the last one."""
    weekday = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[day.weekday()]
    if (day + timedelta(days=7)).month != day.month:
        return f"-1{weekday}"
    return f"{(day.day - 1) // 7 + 1}{weekday}"


def _first_matching(year: int, month: int, by_day: str) -> date:
    """The date in `year` that a BYMONTH/BYDAY rule picks (for the observance's DTSTART)."""
    ordinal, weekday = (
        int(by_day[:-2]),
        ("MO", "TU", "WE", "TH", "FR", "SA", "SU").index(by_day[-2:]),
    )
    days = [date(year, month, d) for d in range(1, 32) if _valid(year, month, d)]
    matching = [d for d in days if d.weekday() == weekday]
    return matching[ordinal - 1] if ordinal > 0 else matching[ordinal]


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=512)
def vtimezone(tz_name: str, year: int) -> Timezone:
    """The VTIMEZONE for a zone, with yearly rules taken from `year`'s transitions."""
    component = Timezone()
    component.add("tzid", tz_name)
    changes = transitions(tz_name, year)
    if not changes:
        # No daylight saving (e.g. Asia/Shanghai): one standard observance.
        tz = ZoneInfo(tz_name)
        moment = datetime(year, 1, 1, tzinfo=UTC).astimezone(tz)
        standard = TimezoneStandard()
        standard.add("dtstart", datetime(RULE_EPOCH_YEAR, 1, 1))
        standard.add("tzoffsetfrom", moment.utcoffset())
        standard.add("tzoffsetto", moment.utcoffset())
        standard.add("tzname", moment.tzname())
        component.add_component(standard)
        return component
    for change in changes:
        observance = TimezoneDaylight() if change.is_dst else TimezoneStandard()
        day = change.local_before.date()
        by_day = _by_day(day)
        epoch_day = _first_matching(RULE_EPOCH_YEAR, day.month, by_day)
        observance.add("dtstart", datetime.combine(epoch_day, change.local_before.time()))
        observance.add("rrule", {"freq": "yearly", "bymonth": day.month, "byday": by_day})
        observance.add("tzoffsetfrom", change.offset_from)
        observance.add("tzoffsetto", change.offset_to)
        observance.add("tzname", change.name)
        component.add_component(observance)
    return component


@lru_cache(maxsize=512)
def vtimezone_bytes(tz_name: str, year: int) -> bytes:
    """The serialized VTIMEZONE, rendered once per zone and year."""
    return vtimezone(tz_name, year).to_ical()
