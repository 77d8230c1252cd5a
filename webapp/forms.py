"""Form helpers shared by the domains."""

from zoneinfo import available_timezones

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from webapp.bounds import date_in_range, date_range_message
from webapp.text import clean_line, clean_text

# Zones most series use come first in the picker; every IANA zone follows.
COMMON_TIMEZONES = (
    "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "Asia/Tokyo",
    "Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles", "UTC",
)  # fmt: skip


def as_choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as the SelectChoice objects WTForms wants."""
    return [SelectChoice(value=value, label=label) for value, label in pairs]


def timezone_choices() -> list[SelectChoice]:
    rest = sorted(available_timezones() - set(COMMON_TIMEZONES))
    return as_choices((name, name) for name in (*COMMON_TIMEZONES, *rest))


class LineField(StringField):
    """A single-line text input, cleaned at the boundary (webapp.text.clean_line)."""

    def __init__(self, *args, filters=(), **kwargs):
        super().__init__(*args, filters=(clean_line, *filters), **kwargs)


class ParagraphField(TextAreaField):
    """A multi-line text input, cleaned at the boundary (webapp.text.clean_text)."""

    def __init__(self, *args, filters=(), **kwargs):
        super().__init__(*args, filters=(clean_text, *filters), **kwargs)


def supported_date(form, field) -> None:
    """A WTForms validator: the date lies in the years the product supports."""
    if field.data is not None and not date_in_range(field.data):
        raise ValidationError(str(date_range_message()))


class ActionForm(FlaskForm):
    """A button that changes something: a POST with a CSRF token and nothing else."""


class WarningsMixin:
    accept_warnings = BooleanField(_l("I have read the warnings; save anyway"))
