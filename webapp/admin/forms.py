from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField
from wtforms.validators import DataRequired, Length, NumberRange

from webapp.forms import LineField


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
