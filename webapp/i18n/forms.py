from flask import current_app
from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectField
from wtforms.validators import DataRequired

from webapp.forms import as_choices

# Each language is named in itself, so anyone can find their own.
LANGUAGE_NAMES = {"zh_CN": "简体中文", "en": "English"}


class LanguageForm(FlaskForm):
    locale = SelectField(validators=[DataRequired()])
    next = HiddenField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.locale.choices = as_choices(
            (code, LANGUAGE_NAMES.get(code, code)) for code in current_app.config["LANGUAGES"]
        )
