from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    TimeField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from webapp.forms import LineField, ParagraphField, WarningsMixin, as_choices, supported_date
from webapp.sessions.models import StreamMode
from webapp.sessions.slots import (
    MAX_REPEAT,
    Frequency,
)

DATE_REQUIRED = _l("Please enter a date.")
TIME_REQUIRED = _l("Please enter a time.")


JOIN_URL_LABEL = _l("Join link (live room or meeting; optional)")


STREAM_MODES = [
    (
        StreamMode.EXTERNAL.value,
        _l("A room elsewhere (Tencent Meeting, DingTalk, Zoom, a live site)"),
    ),
    (
        StreamMode.HOSTED.value,
        _l("Self-hosted: broadcast to Yunketang with OBS or a meeting tool's 推流"),
    ),
]


class SessionForm(WarningsMixin, FlaskForm):
    title = LineField(_l("Title"), validators=[Length(max=200)])
    location = LineField(_l("Place or platform"), validators=[Length(max=200)])
    stream_mode = RadioField(
        _l("How it is broadcast"),
        choices=as_choices(STREAM_MODES),
        default=StreamMode.EXTERNAL.value,
    )
    join_url = LineField(JOIN_URL_LABEL, validators=[Length(max=1000)])
    day = DateField(_l("Date"), validators=[DataRequired(message=DATE_REQUIRED), supported_date])
    start = TimeField(_l("Starts"), validators=[DataRequired(message=TIME_REQUIRED)])
    end = TimeField(_l("Ends"), validators=[DataRequired(message=TIME_REQUIRED)])


class RepeatForm(WarningsMixin, FlaskForm):
    title_template = LineField(
        _l("Title ({n} becomes the number)"), default="第{n}次课", validators=[Length(max=200)]
    )
    location = LineField(_l("Place or platform"), validators=[Length(max=200)])
    join_url = LineField(JOIN_URL_LABEL, validators=[Length(max=1000)])
    first_day = DateField(
        _l("First date"), validators=[DataRequired(message=DATE_REQUIRED), supported_date]
    )
    start = TimeField(_l("Starts"), validators=[DataRequired(message=TIME_REQUIRED)])
    end = TimeField(_l("Ends"), validators=[DataRequired(message=TIME_REQUIRED)])
    count = IntegerField(
        _l("Number of sessions"),
        default=3,
        validators=[
            DataRequired(message=_l("Please enter a number.")),
            NumberRange(min=1, max=MAX_REPEAT),
        ],
    )
    frequency = SelectField(
        _l("Repeat"),
        choices=as_choices(
            [
                (Frequency.DAILY.value, _l("Daily")),
                (Frequency.WEEKDAYS.value, _l("Weekdays only")),
                (Frequency.WEEKLY.value, _l("Weekly")),
            ]
        ),
        default=Frequency.DAILY.value,
    )


class RescheduleForm(WarningsMixin, FlaskForm):
    day = DateField(
        _l("New date"), validators=[DataRequired(message=DATE_REQUIRED), supported_date]
    )
    start = TimeField(_l("Starts"), validators=[DataRequired(message=TIME_REQUIRED)])
    end = TimeField(_l("Ends"), validators=[DataRequired(message=TIME_REQUIRED)])
    reason = LineField(_l("Reason (participants see it)"), validators=[Length(max=500)])


class CancelForm(FlaskForm):
    reason = ParagraphField(
        _l("Reason (participants see it)"),
        validators=[
            DataRequired(message=_l("Please give a reason for the cancellation.")),
            Length(max=2000),
        ],
    )


class LectureForm(FlaskForm):
    title = LineField(
        _l("Title"),
        validators=[DataRequired(message=_l("Please enter a title.")), Length(max=200)],
    )
    speaker_ids = SelectMultipleField(_l("Speakers"), coerce=int)
    start = TimeField(_l("Own start (optional)"), validators=[Optional()])
    end = TimeField(_l("Own end (optional)"), validators=[Optional()])
