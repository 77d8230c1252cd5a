from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.validators import DataRequired, Length

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
