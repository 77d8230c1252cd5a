from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField
from wtforms.validators import DataRequired, NumberRange

from webapp.forms import as_choices

UNIT_MINUTES = {"minutes": 1, "hours": 60, "days": 24 * 60}


class PreferencesForm(FlaskForm):
    email_reminders = BooleanField(_l("Send me reminders and changes by email"))


class RuleForm(FlaskForm):
    amount = IntegerField(
        _l("Remind"),
        validators=[
            DataRequired(message=_l("Please enter a number.")),
            NumberRange(min=1, max=60 * 24 * 30),
        ],
    )
    unit = SelectField(
        _l("Unit of time"),
        choices=as_choices(
            [
                ("minutes", _l("minutes before")),
                ("hours", _l("hours before")),
                ("days", _l("days before")),
            ]
        ),
        default="hours",
    )

    @property
    def minutes(self) -> int:
        return self.amount.data * UNIT_MINUTES[self.unit.data]
