"""Bounds on what enters: dates, ids and sizes that the product handles everywhere."""

from datetime import date

from flask_babel import lazy_gettext as _l

# Dates outside these years are refused wherever a date enters: beyond them, time zone
# arithmetic overflows (year 1, 9999) and no course is planned that far anyway.
FIRST_YEAR = 2000
LAST_YEAR = 2100
# The largest id a URL may carry: PostgreSQL's integer (int4) columns go no further.
MAX_ID = 2**31 - 1


def date_in_range(day: date) -> bool:
    return FIRST_YEAR <= day.year <= LAST_YEAR


def date_range_message():
    return _l(
        "Please choose a date between %(first)d and %(last)d.", first=FIRST_YEAR, last=LAST_YEAR
    )
