from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
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
