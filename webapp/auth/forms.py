from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from webapp.forms import LineField


class LoginForm(FlaskForm):
    identifier = LineField(
        _l("Email or mobile number"),
        validators=[
            DataRequired(message=_l("Please enter your email or mobile number.")),
            Length(max=254),
        ],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(message=_l("Please enter your password.")), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField(_l("Keep me logged in on this device"))
    next = HiddenField()


class LogoutForm(FlaskForm):
    """Logging out is a POST with a CSRF token, so other sites cannot log users out."""


class NewPasswordForm(FlaskForm):
    """A new password, typed twice."""

    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(message=_l("Please enter your password.")), Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("New password again"),
        validators=[EqualTo("password", message=_l("The two passwords differ."))],
        render_kw={"autocomplete": "new-password"},
    )


class SetPasswordForm(NewPasswordForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )


class CodeRequestForm(FlaskForm):
    phone = LineField(
        _l("Mobile number"),
        validators=[DataRequired(message=_l("Please enter your mobile number.")), Length(max=30)],
        render_kw={"autocomplete": "tel", "inputmode": "tel", "autofocus": True},
    )


class CodeForm(FlaskForm):
    code = LineField(
        _l("Code from the SMS"),
        validators=[DataRequired(message=_l("Please enter the code.")), Length(max=12)],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "autofocus": True,
        },
    )
    remember = BooleanField(_l("Keep me logged in on this device"))


class ForgotForm(FlaskForm):
    identifier = LineField(
        _l("Email or mobile number"),
        validators=[
            DataRequired(message=_l("Please enter your email or mobile number.")),
            Length(max=254),
        ],
        render_kw={"autocomplete": "username", "autofocus": True},
    )


class ResetForm(NewPasswordForm):
    code = LineField(
        _l("Code from the SMS"),
        validators=[DataRequired(message=_l("Please enter the code.")), Length(max=12)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
