"""The JSON API, /api/v1: series, sessions, lectures, speakers, units, participants and
enrollments (read and write), attendance (read).

Who may call what is in the route table (webapp/permissions.py), as for the pages; the views
call the same services as the pages do, in one unit of work each. Lists are paged by an
opaque cursor; GETs carry an ETag and answer 304 to a matching If-None-Match."""

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager

import flask_smorest
import sqlalchemy as sa
from flask import abort
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload
from webargs.flaskparser import FlaskParser

from webapp.api import schemas
from webapp.attendance.reports import final_session_ids, session_rows
from webapp.bounds import MAX_ID
from webapp.db import db, utcnow
from webapp.errors import InvalidInput, NotFound
from webapp.people.accounts import edit_user
from webapp.people.models import Speaker, Unit, UnitKind, User
from webapp.people.services import create_user
from webapp.people.speakers import create_speaker, update_speaker
from webapp.people.units import create_unit, move_unit, rename_unit, unit_and_descendant_ids
from webapp.series.enrollment import enroll, remove_enrollment
from webapp.series.models import Enrollment, EnrollmentSource, Series, series_organizer
from webapp.series.services import archive_series, create_series, update_series
from webapp.sessions.lectures import add_lecture, delete_lecture, update_lecture
from webapp.sessions.models import Lecture, LectureSession
from webapp.sessions.services import (
    cancel_session,
    change_session,
    create_session,
    publish_series,
)


class StrictParser(FlaskParser):
    # A misspelt filter (`unit=3` for `unit_id=3`) is refused, not silently ignored: the
    # schemas' own rule (unknown fields raise) holds for the query string too.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None}


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()


series_bp = Blueprint("api_series", __name__, url_prefix="/api/v1", description="Series")
sessions_bp = Blueprint(
    "api_sessions", __name__, url_prefix="/api/v1", description="Sessions and their lectures"
)
people_bp = Blueprint(
    "api_people", __name__, url_prefix="/api/v1", description="Speakers, units, participants"
)
enrollments_bp = Blueprint(
    "api_enrollments", __name__, url_prefix="/api/v1", description="Enrollments"
)
attendance_bp = Blueprint(
    "api_attendance", __name__, url_prefix="/api/v1", description="Attendance (read only)"
)
BLUEPRINTS = (series_bp, sessions_bp, people_bp, enrollments_bp, attendance_bp)
ERRORS = (400, 401, 403, 404, 409, 422)


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit when the block succeeds; otherwise roll back and let the error answer (a
    DomainError becomes the API's error object, in webapp/errors.py)."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


# --- paging ----------------------------------------------------------------------------------


def _decode(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"==="))["after"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        after = None
    if not isinstance(after, int) or not 0 <= after <= MAX_ID:
        raise InvalidInput(_("This cursor is not one the API gave out."), field="cursor")
    return after


def _encode(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def page(query: sa.Select, id_column, args: dict) -> dict:
    """One page of a query, by id, after the cursor."""
    limit = args["limit"]
    query = query.where(id_column > _decode(args.get("cursor"))).order_by(id_column)
    rows = list(db.session.scalars(query.limit(limit + 1)))
    next_cursor = _encode(rows[limit - 1].id) if len(rows) > limit else None
    return {"items": rows[:limit], "next_cursor": next_cursor}


def _managed_series_ids() -> sa.Select | None:
    """The series the caller organizes (None: an admin, every series)."""
    if current_user.is_admin:
        return None
    return sa.select(series_organizer.c.series_id).where(
        series_organizer.c.user_id == current_user.id
    )


def _member_ids(unit_id: int) -> sa.Select:
    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(_("There is no unit with this number."), field="unit_id")
    return sa.select(User.id).where(User.unit_id.in_(unit_and_descendant_ids(unit)))


# --- series ----------------------------------------------------------------------------------


@series_bp.route("/series", methods=["GET"])
@series_bp.etag
@series_bp.arguments(schemas.ListArgs, location="query")
@series_bp.response(200, schemas.SeriesPage)
def series_list(args):
    """The series the caller organizes (an admin: every series)."""
    query = sa.select(Series)
    managed = _managed_series_ids()
    if managed is not None:
        query = query.where(Series.id.in_(managed))
    return page(query, Series.id, args)


@series_bp.route("/series", methods=["POST"])
@series_bp.arguments(schemas.SeriesSchema)
@series_bp.response(201, schemas.SeriesSchema)
def series_create(data):
    """A new draft series, organized by the caller."""
    with unit_of_work():
        series = create_series(organizer=current_user, now=utcnow(), **data)
    return series


@series_bp.route("/series/<int:series_id>", methods=["GET"])
@series_bp.etag
@series_bp.response(200, schemas.SeriesSchema)
def series_get(series_id: int):
    return db.get_or_404(Series, series_id)


@series_bp.route("/series/<int:series_id>", methods=["PATCH"])
@series_bp.arguments(schemas.SeriesSchema(partial=True))
@series_bp.response(200, schemas.SeriesSchema)
def series_update(data, series_id: int):
    """Change some of a series' fields; the others stay."""
    series = db.get_or_404(Series, series_id)
    fields = {
        name: data.get(name, getattr(series, name))
        for name in (
            "title", "description", "timezone", "visibility", "capacity",
            "allows_self_enrollment", "attendance_share", "attendance_late_minutes",
            "attendance_gap_minutes", "makeup_days", "presence_checks",
            "presence_answer_seconds", "credit_minutes",
        )
    }  # fmt: skip
    with unit_of_work():
        update_series(series, now=utcnow(), **fields)
    return series


@series_bp.route("/series/<int:series_id>/publish", methods=["POST"])
@series_bp.response(200, schemas.SeriesSchema)
def series_publish(series_id: int):
    """Publish a draft series (as **发布** does): its participants see it from now on."""
    series = db.get_or_404(Series, series_id)
    with unit_of_work():
        publish_series(series, now=utcnow())
    return series


@series_bp.route("/series/<int:series_id>/archive", methods=["POST"])
@series_bp.response(200, schemas.SeriesSchema)
def series_archive(series_id: int):
    """Archive a published series: it stays readable, off the active lists."""
    series = db.get_or_404(Series, series_id)
    with unit_of_work():
        archive_series(series)
    return series


# --- sessions --------------------------------------------------------------------------------


@sessions_bp.route("/sessions", methods=["GET"])
@sessions_bp.etag
@sessions_bp.arguments(schemas.SessionListArgs, location="query")
@sessions_bp.response(200, schemas.SessionPage)
def sessions_list(args):
    """Sessions of the series the caller organizes, by time range, series or unit."""
    query = sa.select(LectureSession)
    managed = _managed_series_ids()
    if managed is not None:
        query = query.where(LectureSession.series_id.in_(managed))
    if "series_id" in args:
        query = query.where(LectureSession.series_id == args["series_id"])
    if "starts_after" in args:
        query = query.where(LectureSession.starts_at >= args["starts_after"])
    if "starts_before" in args:
        query = query.where(LectureSession.starts_at < args["starts_before"])
    if "unit_id" in args:
        enrolled = sa.select(Enrollment.series_id).where(
            Enrollment.user_id.in_(_member_ids(args["unit_id"]))
        )
        query = query.where(LectureSession.series_id.in_(enrolled))
    return page(query, LectureSession.id, args)


@sessions_bp.route("/series/<int:series_id>/sessions", methods=["POST"])
@sessions_bp.arguments(schemas.SessionSchema)
@sessions_bp.response(201, schemas.SessionSchema)
def sessions_create(data, series_id: int):
    """Add a session to a series (participants see it once the series is published)."""
    series = db.get_or_404(Series, series_id)
    with unit_of_work():
        session = create_session(series, now=utcnow(), **data)
    return session


@sessions_bp.route("/sessions/<int:session_id>", methods=["GET"])
@sessions_bp.etag
@sessions_bp.response(200, schemas.SessionSchema)
def sessions_get(session_id: int):
    return db.get_or_404(LectureSession, session_id)


@sessions_bp.route("/sessions/<int:session_id>", methods=["PATCH"])
@sessions_bp.arguments(schemas.SessionPatchSchema(partial=True))
@sessions_bp.response(200, schemas.SessionSchema)
def sessions_update(data, session_id: int):
    """New title, place or link; new times move the session and tell its participants."""
    session = db.get_or_404(LectureSession, session_id)
    with unit_of_work():
        change_session(
            session,
            title=data.get("title", session.title),
            location=data.get("location", session.location),
            join_url=data.get("join_url", session.join_url),
            starts_at=data.get("starts_at", session.starts_at),
            ends_at=data.get("ends_at", session.ends_at),
            reason=data.get("reason"),
            accept_warnings=data.get("accept_warnings", False),
            by=current_user,
            now=utcnow(),
        )
    return session


@sessions_bp.route("/sessions/<int:session_id>/cancel", methods=["POST"])
@sessions_bp.arguments(schemas.CancelSchema)
@sessions_bp.response(200, schemas.SessionSchema)
def sessions_cancel(data, session_id: int):
    """Cancel a session with a reason; participants are told, calendars show it cancelled."""
    session = db.get_or_404(LectureSession, session_id)
    with unit_of_work():
        cancel_session(session, reason=data["reason"], by=current_user, now=utcnow())
    return session


def _lecture_out(lecture: Lecture) -> dict:
    return {
        "id": lecture.id,
        "session_id": lecture.session_id,
        "title": lecture.title,
        "speaker_ids": [speaker.id for speaker in lecture.speakers],
        "starts_at": lecture.starts_at,
        "ends_at": lecture.ends_at,
        "position": lecture.position,
    }


@sessions_bp.route("/sessions/<int:session_id>/lectures", methods=["GET"])
@sessions_bp.etag
@sessions_bp.response(200, schemas.LectureList)
def lectures_list(session_id: int):
    """A session's agenda, in order."""
    db.get_or_404(LectureSession, session_id)
    lectures = db.session.scalars(
        sa.select(Lecture)
        .where(Lecture.session_id == session_id)
        .options(selectinload(Lecture.speakers))  # one query for all the speakers
        .order_by(Lecture.position)
    )
    return {"items": [_lecture_out(lecture) for lecture in lectures]}


@sessions_bp.route("/sessions/<int:session_id>/lectures", methods=["POST"])
@sessions_bp.arguments(schemas.LectureSchema)
@sessions_bp.response(201, schemas.LectureSchema)
def lectures_create(data, session_id: int):
    """Add a lecture (a topic and its speakers) to a session's agenda."""
    session = db.get_or_404(LectureSession, session_id)
    speakers = _speakers(data["speaker_ids"])
    with unit_of_work():
        lecture = add_lecture(
            session,
            title=data["title"],
            speakers=speakers,
            starts_at=data.get("starts_at"),
            ends_at=data.get("ends_at"),
        )
    return _lecture_out(lecture)


def _speakers(ids: list[int]) -> list[Speaker]:
    speakers = [db.session.get(Speaker, speaker_id) for speaker_id in ids]
    if None in speakers:
        raise InvalidInput(_("There is no speaker with this number."), field="speaker_ids")
    return speakers


@sessions_bp.route("/lectures/<int:lecture_id>", methods=["PATCH"])
@sessions_bp.arguments(schemas.LectureSchema(partial=True))
@sessions_bp.response(200, schemas.LectureSchema)
def lectures_update(data, lecture_id: int):
    """Change a lecture's title, speakers or times (a replaced speaker is announced to the
    participants of a published session, as on the agenda page)."""
    lecture = db.get_or_404(Lecture, lecture_id)
    speakers = _speakers(data["speaker_ids"]) if "speaker_ids" in data else list(lecture.speakers)
    with unit_of_work():
        update_lecture(
            lecture,
            title=data.get("title", lecture.title),
            speakers=speakers,
            starts_at=data.get("starts_at", lecture.starts_at),
            ends_at=data.get("ends_at", lecture.ends_at),
            now=utcnow(),
        )
    return _lecture_out(lecture)


@sessions_bp.route("/lectures/<int:lecture_id>", methods=["DELETE"])
@sessions_bp.response(204)
def lectures_delete(lecture_id: int):
    """Remove a lecture from its session's agenda."""
    lecture = db.get_or_404(Lecture, lecture_id)
    with unit_of_work():
        delete_lecture(lecture)
    return None


# --- speakers, units, participants -----------------------------------------------------------


@people_bp.route("/speakers", methods=["GET"])
@people_bp.etag
@people_bp.arguments(schemas.ListArgs, location="query")
@people_bp.response(200, schemas.SpeakerPage)
def speakers_list(args):
    return page(sa.select(Speaker), Speaker.id, args)


@people_bp.route("/speakers", methods=["POST"])
@people_bp.arguments(schemas.SpeakerSchema)
@people_bp.response(201, schemas.SpeakerSchema)
def speakers_create(data):
    with unit_of_work():
        speaker = create_speaker(**data)
    return speaker


@people_bp.route("/speakers/<int:speaker_id>", methods=["GET"])
@people_bp.etag
@people_bp.response(200, schemas.SpeakerSchema)
def speakers_get(speaker_id: int):
    return db.get_or_404(Speaker, speaker_id)


@people_bp.route("/speakers/<int:speaker_id>", methods=["PATCH"])
@people_bp.arguments(schemas.SpeakerSchema(partial=True))
@people_bp.response(200, schemas.SpeakerSchema)
def speakers_update(data, speaker_id: int):
    speaker = db.get_or_404(Speaker, speaker_id)
    fields = {name: data.get(name, getattr(speaker, name)) for name in SPEAKER_FIELDS}
    with unit_of_work():
        update_speaker(speaker, user=speaker.user, **fields)
    return speaker


SPEAKER_FIELDS = ("name", "title", "affiliation", "bio")


@people_bp.route("/units", methods=["GET"])
@people_bp.etag
@people_bp.arguments(schemas.ListArgs, location="query")
@people_bp.response(200, schemas.UnitPage)
def units_list(args):
    """Every unit of the tree, active or not, with its parent."""
    return page(sa.select(Unit), Unit.id, args)


def _unit_or_error(unit_id: int | None, field: str = "parent_id") -> Unit | None:
    if unit_id is None:
        return None
    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise InvalidInput(_("There is no unit with this number."), field=field)
    return unit


@people_bp.route("/units", methods=["POST"])
@people_bp.arguments(schemas.UnitSchema)
@people_bp.response(201, schemas.UnitSchema)
def units_create(data):
    parent = _unit_or_error(data.get("parent_id"))
    with unit_of_work():
        unit = create_unit(data["name"], data["kind"], parent)
    return unit


@people_bp.route("/units/<int:unit_id>", methods=["GET"])
@people_bp.etag
@people_bp.response(200, schemas.UnitSchema)
def units_get(unit_id: int):
    return db.get_or_404(Unit, unit_id)


@people_bp.route("/units/<int:unit_id>", methods=["PATCH"])
@people_bp.arguments(schemas.UnitSchema(partial=True))
@people_bp.response(200, schemas.UnitSchema)
def units_update(data, unit_id: int):
    """Rename a unit, change its kind, or move it (parent_id; null: the top level)."""
    unit = db.get_or_404(Unit, unit_id)
    with unit_of_work():
        if "name" in data or "kind" in data:
            rename_unit(unit, data.get("name", unit.name), UnitKind(data.get("kind", unit.kind)))
        if "parent_id" in data:
            move_unit(unit, _unit_or_error(data["parent_id"]))
    return unit


def _visible_people() -> sa.Select:
    """The accounts the caller may read: an admin all; an organizer the participants of
    their series."""
    query = sa.select(User)
    managed = _managed_series_ids()
    if managed is not None:
        enrolled = sa.select(Enrollment.user_id).where(Enrollment.series_id.in_(managed))
        query = query.where(User.id.in_(enrolled))
    return query


@people_bp.route("/participants", methods=["GET"])
@people_bp.etag
@people_bp.arguments(schemas.PeopleListArgs, location="query")
@people_bp.response(200, schemas.ParticipantPage)
def participants_list(args):
    query = _visible_people()
    if "unit_id" in args:
        query = query.where(User.id.in_(_member_ids(args["unit_id"])))
    return page(query, User.id, args)


@people_bp.route("/participants/<int:user_id>", methods=["GET"])
@people_bp.etag
@people_bp.response(200, schemas.ParticipantSchema)
def participants_get(user_id: int):
    user = db.session.scalar(_visible_people().where(User.id == user_id))
    if user is None:
        abort(404)
    return user


@people_bp.route("/participants", methods=["POST"])
@people_bp.arguments(schemas.ParticipantSchema)
@people_bp.response(201, schemas.ParticipantSchema)
def participants_create(data):
    """A new participant's account (they sign in with a code sent to their mobile, or a
    log-in link); enrol them next."""
    unit = _unit_or_error(data.get("unit_id"), "unit_id")
    with unit_of_work():
        user = create_user(
            display_name=data["display_name"],
            phone=data.get("phone"),
            email=data.get("email"),
            unit=unit,
            job_title=data.get("job_title"),
        )
    return user


@people_bp.route("/participants/<int:user_id>", methods=["PATCH"])
@people_bp.arguments(schemas.ParticipantSchema(partial=True))
@people_bp.response(200, schemas.ParticipantSchema)
def participants_update(data, user_id: int):
    """Change an account's name, mobile number, email address, unit or title (an admin's
    token, as on the account's page; its roles stay)."""
    user = db.get_or_404(User, user_id)
    unit = _unit_or_error(data["unit_id"], "unit_id") if "unit_id" in data else user.unit
    with unit_of_work():
        edit_user(
            user,
            by=current_user,
            now=utcnow(),
            display_name=data.get("display_name", user.display_name),
            phone=data.get("phone", user.phone),
            email=data.get("email", user.email),
            unit=unit,
            job_title=data.get("job_title", user.job_title),
            roles=set(user.roles),
        )
    return user


# --- enrollments -----------------------------------------------------------------------------


@enrollments_bp.route("/series/<int:series_id>/enrollments", methods=["GET"])
@enrollments_bp.etag
@enrollments_bp.arguments(schemas.EnrollmentListArgs, location="query")
@enrollments_bp.response(200, schemas.EnrollmentPage)
def enrollments_list(args, series_id: int):
    query = (
        sa.select(Enrollment)
        .where(Enrollment.series_id == series_id)
        .options(selectinload(Enrollment.user))
    )
    if "unit_id" in args:
        query = query.where(Enrollment.user_id.in_(_member_ids(args["unit_id"])))
    if "status" in args:
        query = query.where(Enrollment.status == args["status"])
    return page(query, Enrollment.id, args)


@enrollments_bp.route("/series/<int:series_id>/enrollments", methods=["POST"])
@enrollments_bp.arguments(schemas.EnrollmentSchema)
@enrollments_bp.response(201, schemas.EnrollmentSchema)
def enrollments_create(data, series_id: int):
    """Enrol a participant (welcomed as when enrolled on the participants page; the end of
    the waitlist when the series is full)."""
    series = db.get_or_404(Series, series_id)
    user = db.session.get(User, data["user_id"])
    if user is None:
        raise InvalidInput(_("There is no participant with this number."), field="user_id")
    with unit_of_work():
        enrollment = enroll(user, series, source=EnrollmentSource.INDIVIDUAL, now=utcnow())
    return enrollment


@enrollments_bp.route("/series/<int:series_id>/enrollments/<int:enrollment_id>", methods=["DELETE"])
@enrollments_bp.response(204)
def enrollments_delete(series_id: int, enrollment_id: int):
    """End an enrollment (the next on the waitlist moves up)."""
    enrollment = db.get_or_404(Enrollment, enrollment_id)
    if enrollment.series_id != series_id:
        abort(404)
    with unit_of_work():
        remove_enrollment(enrollment, now=utcnow())
    return None


# --- attendance ------------------------------------------------------------------------------


@attendance_bp.route("/sessions/<int:session_id>/attendance", methods=["GET"])
@attendance_bp.etag
@attendance_bp.arguments(schemas.AttendanceArgs, location="query")
@attendance_bp.response(200, schemas.AttendanceSchema)
def attendance_get(args, session_id: int):
    """Each participant's attendance of a session, as on its report (optionally of a
    unit)."""
    session = db.get_or_404(LectureSession, session_id)
    if "unit_id" in args:
        _member_ids(args["unit_id"])  # 404 for a unit that does not exist
    rows = session_rows(session, unit_id=args.get("unit_id"))
    return {
        "session_id": session.id,
        "final": session.id in final_session_ids([session.id]),
        "items": [
            {
                "user_id": row.user.id,
                "name": row.user.display_name,
                "unit": row.unit_name,
                "status": str(row.status),
                "minutes": row.record.minutes,
                "share": round(row.record.share, 4),
                "first_join": row.record.first_join,
                "last_leave": row.record.last_leave,
                "decided_by_hand": row.override is not None and row.override.status is not None,
            }
            for row in rows
        ],
    }
