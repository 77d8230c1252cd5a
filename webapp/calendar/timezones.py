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


def _year_rules(tz_name: str, year: int) -> tuple:
    """What a year's observances look like as yearly rules (equal tuples: equal rules)."""
    changes = transitions(tz_name, year)
    if not changes:
        moment = datetime(year, 1, 1, tzinfo=UTC).astimezone(ZoneInfo(tz_name))
        return (("fixed", moment.utcoffset(), moment.tzname()),)
    return tuple(
        (
            change.local_before.month,
            _by_day(change.local_before.date()),
            change.local_before.time(),
            change.offset_from,
            change.offset_to,
            change.name,
            change.is_dst,
        )
        for change in changes
    )


@lru_cache(maxsize=512)
def vtimezone(tz_name: str, first_year: int, last_year: int | None = None) -> Timezone:
    """One VTIMEZONE for a zone covering first_year..last_year.

    Years with the same rules share one set of observances with yearly RRULEs; where a
    zone changed its rules (or dropped daylight saving), each stretch of years gets its
    own observances, bounded by UNTIL, so one TZID answers for every year in the feed."""
    last_year = first_year if last_year is None else last_year
    stretches: list[tuple[int, int, tuple]] = []
    for year in range(first_year, last_year + 1):
        rules = _year_rules(tz_name, year)
        if stretches and stretches[-1][2] == rules:
            stretches[-1] = (stretches[-1][0], year, rules)
        else:
            stretches.append((year, year, rules))
    component = Timezone()
    component.add("tzid", tz_name)
    for index, (start, end, rules) in enumerate(stretches):
        is_first, is_last = index == 0, index == len(stretches) - 1
        from_year = RULE_EPOCH_YEAR if is_first else start
        for rule in rules:
            if rule[0] == "fixed":
                _kind, offset, name = rule
                standard = TimezoneStandard()
                standard.add("dtstart", datetime(from_year, 1, 1))
                standard.add("tzoffsetfrom", offset)
                standard.add("tzoffsetto", offset)
                standard.add("tzname", name)
                component.add_component(standard)
                continue
            month, by_day, at, offset_from, offset_to, name, is_dst = rule
            observance = TimezoneDaylight() if is_dst else TimezoneStandard()
            first_day = _first_matching(from_year, month, by_day)
            observance.add("dtstart", datetime.combine(first_day, at))
            recurrence = {"freq": "yearly", "bymonth": month, "byday": by_day}
            if not is_last:
                # UNTIL is in UTC: the last onset of this stretch.
                last_local = datetime.combine(_first_matching(end, month, by_day), at)
                recurrence["until"] = (last_local - offset_from).replace(tzinfo=UTC)
            observance.add("rrule", recurrence)
            observance.add("tzoffsetfrom", offset_from)
            observance.add("tzoffsetto", offset_to)
            observance.add("tzname", name)
            component.add_component(observance)
    return component


@lru_cache(maxsize=512)
def vtimezone_bytes(tz_name: str, first_year: int, last_year: int | None = None) -> bytes:
    """The serialized VTIMEZONE, rendered once per zone and span of years."""
    return vtimezone(tz_name, first_year, last_year).to_ical()
