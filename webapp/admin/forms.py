from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from webapp.bounds import MAX_ID
from webapp.forms import LineField, as_choices, supported_date


class LiaisonForm(FlaskForm):
    unit_id = SelectField(_l("Unit"), coerce=int)
    identifier = LineField(
        _l("Email or mobile number"),
        validators=[
            DataRequired(message=_l("Please enter your email or mobile number.")),
            Length(max=254),
        ],
    )


class SmsTemplateForm(FlaskForm):
    kind = SelectField(_l("Message"))
    language = SelectField(_l("Language"))
    code = LineField(
        _l("Template code (模板ID / 模板CODE)"),
        validators=[DataRequired(message=_l("Please enter the template code.")), Length(max=50)],
    )
    max_param_length = IntegerField(
        _l("Longest parameter the template allows (characters)"),
        default=35,
        validators=[
            DataRequired(message=_l("Please enter a number.")),
            NumberRange(min=1, max=500),
        ],
    )


class UserForm(FlaskForm):
    display_name = LineField(
        _l("Name"), validators=[DataRequired(message=_l("Please enter a name.")), Length(max=100)]
    )
    phone = LineField(_l("Mobile number"), validators=[Length(max=30)])
    email = LineField(_l("Email"), validators=[Length(max=254)])
    unit_id = SelectField(_l("Unit"), coerce=int, default=0)
    job_title = LineField(_l("Title (职务)"), validators=[Length(max=100)])
    organizer = BooleanField(_l("Organizer"))
    admin = BooleanField(_l("Administrator"))


UNIT_KINDS = (
    ("township", _l("Township")),
    ("office", _l("Office")),
    ("community", _l("Community")),
    ("village", _l("Village")),
    ("branch", _l("Party branch")),
    ("other", _l("Other")),
)


class UnitForm(FlaskForm):
    """A new unit, or a unit's name and kind."""

    name = LineField(
        _l("Unit name"),
        validators=[DataRequired(message=_l("Please enter a name.")), Length(max=200)],
    )
    kind = SelectField(_l("Kind"), choices=as_choices(UNIT_KINDS), default="village")
    parent_id = SelectField(_l("Under"), coerce=int, default=0)
    add_unit = SubmitField()  # the button: which of the page's forms was sent


class RenameUnitForm(FlaskForm):
    name = LineField(
        _l("Unit name"),
        validators=[DataRequired(message=_l("Please enter a name.")), Length(max=200)],
    )
    kind = SelectField(_l("Kind"), choices=as_choices(UNIT_KINDS))


class MoveUnitForm(FlaskForm):
    parent_id = SelectField(_l("Put it under"), coerce=int)
    move = SubmitField()  # the button: which of the page's forms was sent


class MergeUnitForm(FlaskForm):
    target_id = SelectField(_l("Merge into"), coerce=int)
    merge = SubmitField()  # the button: which of the page's forms was sent


class SettingForm(FlaskForm):
    value = LineField(_l("Value"), validators=[Length(max=200)])
    submit = SubmitField()


class AuditFilterForm(FlaskForm):
    """The audit page's filters (a GET form: nothing changes, no CSRF token)."""

    class Meta:
        csrf = False

    actor = SelectField(_l("Changed by"), default="")
    object_type = SelectField(_l("Kind of object"), default="")
    action = SelectField(_l("Change"), default="")
    object_id = IntegerField(_l("Object number"), validators=[Optional(), NumberRange(1, MAX_ID)])
    series_id = IntegerField(_l("Series number"), validators=[Optional(), NumberRange(1, MAX_ID)])
    since = DateField(_l("From"), validators=[Optional(), supported_date])
    until = DateField(_l("To (inclusive)"), validators=[Optional(), supported_date])


class HookForm(FlaskForm):
    name = LineField(
        _l("Name of the receiving system"),
        validators=[DataRequired(message=_l("Please enter a name.")), Length(max=100)],
    )
    url = LineField(
        _l("Address (https://…)"),
        validators=[DataRequired(message=_l("Please enter the address.")), Length(max=1000)],
    )
    events = SelectMultipleField(
        _l("Send these events"),
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
    )
    active = BooleanField(_l("Active"), default=True)
