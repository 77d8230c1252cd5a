from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms.validators import DataRequired, Length

from webapp.forms import LineField, ParagraphField


class SpeakerForm(FlaskForm):
    name = LineField(
        _l("Name"), validators=[DataRequired(message=_l("Please enter a name.")), Length(max=100)]
    )
    title = LineField(_l("Title (e.g. Professor)"), validators=[Length(max=100)])
    affiliation = LineField(_l("Affiliation"), validators=[Length(max=200)])
    bio = ParagraphField(_l("Biography"), validators=[Length(max=5000)])
    user_identifier = LineField(
        _l("Linked account (email or mobile number, optional)"), validators=[Length(max=254)]
    )
