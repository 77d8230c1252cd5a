"""The shape of what the API takes and gives (marshmallow): the same schemas validate
requests, serialise answers and make the OpenAPI document (apispec, via flask-smorest).

Every text is cleaned at the boundary (single-line or paragraph), every id, count, size and
date is bounded, unknown fields are refused."""

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from webapp.bounds import FIRST_YEAR, LAST_YEAR, MAX_ID
from webapp.people.models import UnitKind
from webapp.series.models import EnrollmentSource, EnrollmentStatus, SeriesStatus, Visibility
from webapp.sessions.models import SessionStatus
from webapp.text import clean_line, clean_text
from webapp.zones import is_valid_timezone


def Id(*, strict: bool = True, **kwargs) -> fields.Integer:  # noqa: N802 (a field type)
    """An id: a whole number the database can hold (strict in JSON; a query gives text)."""
    return fields.Integer(strict=strict, validate=validate.Range(1, MAX_ID), **kwargs)


class Line(fields.String):
    """One line of text, cleaned as every form field is."""

    def _deserialize(self, value, attr, data, **kwargs):
        raw = super()._deserialize(value, attr, data, **kwargs)
        self._validate(raw)  # the bounds hold for what was sent, as the document says
        return clean_line(raw)


class Paragraph(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        raw = super()._deserialize(value, attr, data, **kwargs)
        self._validate(raw)
        return clean_text(raw)


class Flag(fields.Boolean):
    """true or false in JSON; not 1, "yes" or "on"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class Moment(fields.AwareDateTime):
    """A moment with its offset (RFC 3339), between the years the product supports."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not FIRST_YEAR <= moment.year <= LAST_YEAR:
            raise ValidationError(f"Must be between {FIRST_YEAR} and {LAST_YEAR}.")
        return moment


class Strict(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


def _enum(enum_class, **kwargs):
    return fields.Enum(enum_class, by_value=True, **kwargs)


# --- lists ---------------------------------------------------------------------------------


class ListArgs(Strict):
    limit = fields.Integer(
        load_default=50, validate=validate.Range(1, 200), metadata={"description": "page size"}
    )
    cursor = fields.String(
        validate=validate.Length(max=100),
        metadata={"description": "the `next_cursor` of the previous page"},
    )


class SessionListArgs(ListArgs):
    series_id = Id(strict=False)
    unit_id = Id(
        strict=False, metadata={"description": "sessions of series the unit's members are in"}
    )
    starts_after = Moment()
    starts_before = Moment()


class PeopleListArgs(ListArgs):
    unit_id = Id(
        strict=False, metadata={"description": "members of this unit and the units below it"}
    )


class EnrollmentListArgs(PeopleListArgs):
    status = _enum(EnrollmentStatus)


class AttendanceArgs(Strict):
    unit_id = Id(strict=False)


class Page(Schema):
    next_cursor = fields.String(
        allow_none=True, required=True, metadata={"description": "null on the last page"}
    )


# --- series --------------------------------------------------------------------------------


class SeriesSchema(Strict):
    id = Id(dump_only=True)
    title = Line(required=True, validate=validate.Length(1, 200))
    description = Paragraph(validate=validate.Length(max=20_000))
    timezone = fields.String(validate=validate.Length(1, 64), load_default="Asia/Shanghai")
    status = _enum(SeriesStatus, dump_only=True)
    visibility = _enum(Visibility, load_default=Visibility.ENROLLED)
    capacity = fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, 1_000_000))
    allows_self_enrollment = Flag()
    attendance_share = fields.Integer(strict=True, validate=validate.Range(1, 100))
    attendance_late_minutes = fields.Integer(strict=True, validate=validate.Range(0, 600))
    attendance_gap_minutes = fields.Integer(strict=True, validate=validate.Range(0, 60))
    created_at = fields.AwareDateTime(dump_only=True)
    updated_at = fields.AwareDateTime(dump_only=True)

    @validates("timezone")
    def _zone(self, value, **_kwargs):
        if not is_valid_timezone(value):
            raise ValidationError("Not an IANA time zone, e.g. Asia/Shanghai.")


class SeriesPage(Page):
    items = fields.List(fields.Nested(SeriesSchema), required=True)


# --- sessions and lectures -------------------------------------------------------------


class SessionSchema(Strict):
    id = Id(dump_only=True)
    series_id = Id(dump_only=True)
    title = Line(validate=validate.Length(max=200), load_default="")
    starts_at = Moment(required=True)
    ends_at = Moment(required=True)
    location = Line(allow_none=True, validate=validate.Length(max=200))
    join_url = Line(allow_none=True, validate=validate.Length(max=1000))
    status = _enum(SessionStatus, dump_only=True)
    sequence = fields.Integer(dump_only=True)
    cancel_reason = fields.String(dump_only=True, allow_none=True)
    published_at = fields.AwareDateTime(dump_only=True, allow_none=True)

    @validates_schema
    def _order(self, data, **_kwargs):
        if "starts_at" in data and "ends_at" in data and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("Must be after starts_at.", "ends_at")


class SessionPatchSchema(SessionSchema):
    """A partial change: a new title, place or link; new times move the session (participants
    are told, as when it is moved on its page)."""

    reason = Paragraph(validate=validate.Length(max=2000))
    accept_warnings = Flag(
        load_default=False,
        load_only=True,
        metadata={"description": "go ahead although participants have another class then"},
    )


class CancelSchema(Strict):
    reason = Paragraph(required=True, validate=validate.Length(1, 2000))


class SessionPage(Page):
    items = fields.List(fields.Nested(SessionSchema), required=True)


class LectureSchema(Strict):
    id = Id(dump_only=True)
    session_id = Id(dump_only=True)
    title = Line(required=True, validate=validate.Length(1, 200))
    speaker_ids = fields.List(Id(), validate=validate.Length(max=20), load_default=list)
    starts_at = Moment(allow_none=True)
    ends_at = Moment(allow_none=True)
    position = fields.Integer(dump_only=True)


class LectureList(Schema):
    items = fields.List(fields.Nested(LectureSchema), required=True)


# --- people --------------------------------------------------------------------------------


class SpeakerSchema(Strict):
    id = Id(dump_only=True)
    name = Line(required=True, validate=validate.Length(1, 100))
    title = Line(allow_none=True, validate=validate.Length(max=100))
    affiliation = Line(allow_none=True, validate=validate.Length(max=200))
    bio = Paragraph(allow_none=True, validate=validate.Length(max=20_000))


class SpeakerPage(Page):
    items = fields.List(fields.Nested(SpeakerSchema), required=True)


class UnitSchema(Strict):
    id = Id(dump_only=True)
    name = Line(required=True, validate=validate.Length(1, 200))
    kind = _enum(UnitKind, load_default=UnitKind.OTHER)
    parent_id = Id(allow_none=True)
    is_active = fields.Boolean(dump_only=True)


class UnitPage(Page):
    items = fields.List(fields.Nested(UnitSchema), required=True)


class ParticipantSchema(Strict):
    id = Id(dump_only=True)
    display_name = Line(required=True, validate=validate.Length(1, 100))
    phone = fields.String(
        allow_none=True, validate=validate.Length(max=30), metadata={"description": "E.164"}
    )
    email = fields.String(allow_none=True, validate=validate.Length(max=254))
    unit_id = Id(allow_none=True)
    job_title = Line(allow_none=True, validate=validate.Length(max=100))
    is_active = fields.Boolean(dump_only=True)

    @validates_schema
    def _reachable(self, data, **_kwargs):
        if not data.get("phone") and not data.get("email"):
            raise ValidationError("Give a mobile number or an email address.", "phone")


class ParticipantPage(Page):
    items = fields.List(fields.Nested(ParticipantSchema), required=True)


class EnrollmentSchema(Strict):
    id = Id(dump_only=True)
    series_id = Id(dump_only=True)
    user_id = Id(required=True)
    status = _enum(EnrollmentStatus, dump_only=True)
    source = _enum(EnrollmentSource, dump_only=True)
    enrolled_at = fields.AwareDateTime(dump_only=True)
    participant = fields.Nested(ParticipantSchema, attribute="user", dump_only=True)


class EnrollmentPage(Page):
    items = fields.List(fields.Nested(EnrollmentSchema), required=True)


class AttendanceRowSchema(Schema):
    user_id = fields.Integer(required=True)
    name = fields.String(required=True)
    unit = fields.String(required=True)
    status = fields.String(
        required=True,
        metadata={"description": "present, late, left_early, absent, excused or made_up"},
    )
    minutes = fields.Integer(required=True)
    share = fields.Float(required=True, metadata={"description": "of the session, 0 to 1"})
    first_join = fields.AwareDateTime(allow_none=True, required=True)
    last_leave = fields.AwareDateTime(allow_none=True, required=True)
    decided_by_hand = fields.Boolean(required=True)


class AttendanceSchema(Schema):
    session_id = fields.Integer(required=True)
    final = fields.Boolean(required=True, metadata={"description": "frozen by the worker"})
    items = fields.List(fields.Nested(AttendanceRowSchema), required=True)


class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"description": "stable, for programs"})
    message = fields.String(required=True, metadata={"description": "in the caller's language"})
    field = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody, required=True)
