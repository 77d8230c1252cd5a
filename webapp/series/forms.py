from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from webapp.forms import LineField, ParagraphField, WarningsMixin, as_choices, timezone_choices
from webapp.series.models import Visibility


class SeriesForm(FlaskForm):
    title = LineField(
        _l("Title"),
        validators=[DataRequired(message=_l("Please enter a title.")), Length(max=200)],
    )
    description = ParagraphField(_l("Description"), validators=[Length(max=20000)])
    timezone = SelectField(_l("Time zone"), default="Asia/Shanghai")
    visibility = SelectField(
        _l("Who can see it"),
        choices=as_choices(
            [
                (Visibility.ENROLLED.value, _l("Enrolled participants only")),
                (Visibility.PUBLIC.value, _l("Everyone (public)")),
            ]
        ),
        default=Visibility.ENROLLED.value,
    )
    capacity = IntegerField(
        _l("Capacity (empty: no limit)"),
        validators=[Optional(), NumberRange(min=1, max=1_000_000)],
    )
    allows_self_enrollment = BooleanField(_l("Participants may enrol themselves (public series)"))
    attendance_share = IntegerField(
        _l("Attendance: present with at least this share of a session (%)"),
        default=80,
        validators=[Optional(), NumberRange(1, 100)],
    )
    attendance_late_minutes = IntegerField(
        _l("Attendance: late when first in more than this many minutes after the start"),
        default=10,
        validators=[Optional(), NumberRange(0, 600)],
    )
    attendance_gap_minutes = IntegerField(
        _l("Attendance: breaks shorter than this many minutes are bridged (reconnects)"),
        default=2,
        validators=[Optional(), NumberRange(0, 60)],
    )

    makeup_days = IntegerField(
        _l("Make-up by replay (补学): days after a session the replay still counts (empty: no)"),
        validators=[Optional(), NumberRange(1, 365)],
    )

    presence_checks = IntegerField(
        _l("Presence checks: times the player asks “still listening?” in a live session (0: off)"),
        validators=[Optional(), NumberRange(0, 10)],
    )
    presence_answer_seconds = IntegerField(
        _l("Presence checks: seconds to answer before the time counts as away"),
        validators=[Optional(), NumberRange(10, 600)],
    )

    credit_minutes = IntegerField(
        _l("Credit hours (学时): one for every this many minutes attended"),
        validators=[Optional(), NumberRange(10, 240)],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = timezone_choices()


class AddParticipantForm(WarningsMixin, FlaskForm):
    identifier = LineField(
        _l("Email or mobile number"),
        validators=[
            DataRequired(message=_l("Please enter your email or mobile number.")),
            Length(max=254),
        ],
    )
    display_name = LineField(
        _l("Name (only for a new account)"), validators=[Optional(), Length(max=100)]
    )
    unit_id = SelectField(_l("Unit (only for a new account)"), coerce=int, default=0)


class EnrollUnitForm(FlaskForm):
    unit_id = SelectField(_l("Unit"), coerce=int)
    include_sub_units = BooleanField(_l("Include its sub-units"), default=True)


class QuotaForm(FlaskForm):
    unit_id = SelectField(_l("Unit"), coerce=int)
    quota = IntegerField(
        _l("Seats (empty: no limit)"), validators=[Optional(), NumberRange(min=0, max=1_000_000)]
    )


class ImportUploadForm(FlaskForm):
    sheet = FileField(
        _l("Excel (.xlsx) or CSV file"),
        validators=[
            FileRequired(message=_l("Please choose a file.")),
            FileAllowed(["xlsx", "csv"], message=_l("Only .xlsx and .csv files can be imported.")),
        ],
    )


class ImportConfirmForm(FlaskForm):
    """The import's confirmation (its CSRF token); the choices for unknown units are the
    form's own `unit-N` and `parent-N` fields, one pair per unit name."""


class LoginLinksForm(FlaskForm):
    scope = SelectField(
        _l("Who"),
        choices=as_choices(
            [
                ("never", _l("everyone who has never signed in")),
                ("unit", _l("a unit's participants")),
                ("all", _l("every participant")),
            ]
        ),
        default="never",
    )
    unit_id = SelectField(_l("Unit"), coerce=int, default=0)
    how = SelectField(
        _l("How"),
        choices=as_choices(
            [
                ("send", _l("send through each person's channel")),
                ("sheet", _l("download a sheet (Excel)")),
            ]
        ),
        default="send",
    )
