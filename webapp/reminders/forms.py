from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField
from wtforms.validators import DataRequired, Length, NumberRange

from webapp.forms import LineField, as_choices

UNIT_MINUTES = {"minutes": 1, "hours": 60, "days": 24 * 60}


class PreferencesForm(FlaskForm):
    # The channels besides email, shown when the admin turned them on.
    wecom = BooleanField(_l("by WeCom (企业微信) message"))
    dingtalk = BooleanField(_l("by DingTalk (钉钉) work notification"))
    sms = BooleanField(_l("by SMS"))
    email_reminders = BooleanField(_l("Send me reminders and changes by email"))
    feed_alarm_minutes = SelectField(
        _l("Alarm in my subscribed calendar"),
        coerce=int,
        choices=as_choices(
            [
                (0, _l("none")),
                (10, _l("10 minutes before")),
                (15, _l("15 minutes before")),
                (30, _l("30 minutes before")),
                (60, _l("1 hour before")),
            ]
        ),
        default=0,
    )


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


class WebhookForm(FlaskForm):
    name = LineField(
        _l("Robot's name (in this list)"),
        validators=[DataRequired(message=_l("Please enter a name.")), Length(max=100)],
    )
    kind = SelectField(
        _l("Kind"),
        choices=as_choices(
            [
                ("wecom", _l("WeCom group robot (企业微信)")),
                ("dingtalk", _l("DingTalk group robot (钉钉)")),
                ("generic", _l("Other: signed JSON POST")),
            ]
        ),
        default="wecom",
    )
    url = LineField(
        _l("Robot address (webhook URL)"),
        validators=[DataRequired(message=_l("Please enter the address.")), Length(max=1000)],
    )
    secret = PasswordField(
        _l("Signing secret (DingTalk “加签”, or for signed JSON; optional)"),
        validators=[Length(max=200)],
    )
    scope = SelectField(_l("Messages for"), coerce=int, default=0)
    mentions_absent = BooleanField(
        _l("Five minutes after the start, @ the unit's members who have not joined (unit robots)")
    )
