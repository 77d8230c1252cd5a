"""Session slots in local time: one day's start and end in the series' zone, and the
slots of a repeat (daily, weekdays, weekly), across clock changes too."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from flask_babel import gettext as _

from webapp.errors import (
    InvalidInput,
)
from webapp.zones import local_to_utc

# --- slots in local time --------------------------------------------------------------------

MAX_REPEAT = 100


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKDAYS = "weekdays"
    WEEKLY = "weekly"


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime


def slot_from_local(day: date, start: time, end: time, tz_name: str) -> Slot:
    """A session on one local day from start to end (an end at or before start is refused)."""
    if end <= start:
        raise InvalidInput(_("The end time must be after the start time."), field="ends_at")
    return Slot(
        local_to_utc(day, start, tz_name, field="starts_at"),
        local_to_utc(day, end, tz_name, field="ends_at"),
    )


def plan_repeats(
    first_day: date, start: time, end: time, count: int, frequency: Frequency, tz_name: str
) -> list[Slot]:
    """The slots of a repeat: the same local times each day, across DST changes too."""
    if not 1 <= count <= MAX_REPEAT:
        raise InvalidInput(
            _("Create between 1 and %(max)d sessions at once.", max=MAX_REPEAT), field="count"
        )
    days: list[date] = []
    day = first_day
    while len(days) < count:
        if frequency != Frequency.WEEKDAYS or day.weekday() < 5:
            days.append(day)
        day += timedelta(weeks=1) if frequency == Frequency.WEEKLY else timedelta(days=1)
    return [slot_from_local(d, start, end, tz_name) for d in days]
