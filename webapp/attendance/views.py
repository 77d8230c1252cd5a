"""Attendance pages: a session's report (with filters, exports and the status set by hand)
and a participant's own record."""

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import SelectField
from wtforms.validators import DataRequired, Length

from webapp.attendance.checkin import check_in, code_is_valid, current_code
from webapp.attendance.closing import closing_workbook
from webapp.attendance.explain import STATUS_NAMES, explain, status_name
from webapp.attendance.exports import (
    MARKS,
    series_csv,
    series_xlsx,
    session_csv,
    session_xlsx,
    unit_summary,
)
from webapp.attendance.finalise import finalise
from webapp.attendance.imports import (
    MAX_ROWS,
    PRESETS,
    ROLES,
    apply,
    match,
    match_by_hand,
    read_rows,
    rows_from_json,
    rows_to_json,
)
from webapp.attendance.models import AttendanceFinal, AttendanceImport, ExcuseNote
from webapp.attendance.reports import (
    SeriesMatrix,
    decide_excuse,
    excuse_notes,
    my_records,
    not_joined_live,
    override_history,
    override_status,
    series_matrix,
    session_rows,
    status_counts,
    submit_excuse,
    unit_report,
)
from webapp.attendance.rules import Status
from webapp.attendance.signin_pdf import signin_pdf
from webapp.db import db, utcnow
from webapp.errors import InvalidInput
from webapp.forms import ActionForm, LineField, ParagraphField, as_choices
from webapp.people.models import Unit, User
from webapp.people.units import unit_and_descendant_ids
from webapp.qr import qr_svg
from webapp.series.models import Enrollment, EnrollmentStatus, Series
from webapp.series.sheets import read_table
from webapp.sessions.joining import may_join, room_is_open
from webapp.sessions.models import LectureSession
from webapp.spreadsheets import download
from webapp.streaming.viewers import viewer_samples
from webapp.text import natural_key
from webapp.urls import public_url
from webapp.work import unit_of_work
from webapp.zones import zone

bp = Blueprint("attendance", __name__)

BY_THE_RULES = "rules"


class OverrideForm(FlaskForm):
    status = SelectField(
        _l("Status"),
        choices=as_choices(
            [(BY_THE_RULES, _l("as the rules say"))]
            + [(status.value, name) for status, name in STATUS_NAMES.items()]
        ),
    )
    reason = ParagraphField(
        _l("Reason (kept in the record)"),
        validators=[DataRequired(message=_l("Please give a reason.")), Length(max=500)],
    )


def _beat() -> int:
    return current_app.config["HEARTBEAT_SECONDS"]


def _filters(session: LectureSession) -> tuple[int | None, Status | None]:
    unit = request.args.get("unit", type=int)
    try:
        status = Status(request.args.get("status", "")) if request.args.get("status") else None
    except ValueError:
        status = None
    return unit, status


@bp.get("/sessions/<int:session_id>/attendance")
def session_report(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    unit_id, status = _filters(session)
    every = session_rows(session, beat_seconds=_beat())
    rows = [
        row
        for row in every
        if (unit_id is None or row.user.unit_id == unit_id)
        and (status is None or row.status == status)
    ]
    units = sorted({(row.user.unit_id, row.unit_name) for row in every if row.user.unit_id},
                   key=lambda unit: natural_key(unit[1]))  # fmt: skip
    tz_name = session.series.timezone
    return render_template(
        "attendance/session.html",
        session=session,
        series=session.series,
        rows=rows,
        counts=status_counts(every),
        units=units,
        unit_id=unit_id,
        status=status,
        summary=unit_summary(every),
        explanations={
            row.user.id: explain(row.record, tz_name, override=row.override) for row in rows
        },  # fmt: skip
        status_name=status_name,
        statuses=list(Status),
        notes=[note for note in excuse_notes(session.id) if note.accepted is None],
        final=db.session.get(AttendanceFinal, session.id),
        samples=viewer_samples(session.id),
        now=utcnow(),
        action_form=ActionForm(),
    )


@bp.get("/sessions/<int:session_id>/attendance.csv")
def session_report_csv(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    rows = session_rows(session, beat_seconds=_beat())
    return download(
        session_csv(rows, session.series.timezone),
        "text/csv; charset=utf-8",
        f"attendance-{session.id}.csv",
    )


@bp.get("/sessions/<int:session_id>/attendance.xlsx")
def session_report_xlsx(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    rows = session_rows(session, beat_seconds=_beat())
    return download(
        session_xlsx(rows, session.series.timezone, title=session.title or session.series.title),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        f"attendance-{session.id}.xlsx",
    )


@bp.route("/sessions/<int:session_id>/attendance/<int:user_id>", methods=["GET", "POST"])
def participant(session_id: int, user_id: int):
    """One participant's record in one session, its history of hand-set statuses, and the
    form to set it by hand."""
    session = db.get_or_404(LectureSession, session_id)
    user = db.get_or_404(User, user_id)
    enrolled = db.session.scalar(
        db.select(Enrollment.id).where(
            Enrollment.series_id == session.series_id,
            Enrollment.user_id == user.id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
        )
    )
    if enrolled is None:
        abort(404)
    form = OverrideForm()
    if form.validate_on_submit():
        chosen = None if form.status.data == BY_THE_RULES else Status(form.status.data)
        override_status(session, user, chosen, form.reason.data, by=current_user, now=utcnow())
        db.session.commit()
        flash(_("Saved. The change is kept in the record with your name and reason."), "info")
        return redirect(url_for("attendance.session_report", session_id=session.id))
    row = next(r for r in session_rows(session, beat_seconds=_beat()) if r.user.id == user.id)
    return render_template(
        "attendance/participant.html",
        session=session,
        series=session.series,
        row=row,
        unit=db.session.get(Unit, user.unit_id) if user.unit_id else None,
        explanation=explain(row.record, session.series.timezone, override=row.override),
        history=[o for o in override_history(session.id) if o.user_id == user.id],
        form=form,
        status_name=status_name,
    ), (400 if form.errors else 200)


@bp.get("/my/attendance")
def mine():
    """The participant's own record, and nobody else's."""
    records = my_records(current_user, now=utcnow(), beat_seconds=_beat())
    return render_template(
        "attendance/mine.html",
        records=[
            (
                session,
                record,
                override,
                explain(record, session.series.timezone, override=override),
                excuse_notes(session.id, user_id=current_user.id),
            )
            for session, record, override in records
        ],
        status_name=status_name,
        now=utcnow(),
        excuse_form=ExcuseForm(),
        attended=(Status.PRESENT, Status.LATE, Status.MADE_UP, Status.EXCUSED),
    )


# --- a series ---------------------------------------------------------------------------


def _matrix(series: Series, unit: Unit | None = None) -> SeriesMatrix:
    matrix = series_matrix(series, now=utcnow(), beat_seconds=_beat())
    if unit is None:
        return matrix
    ids = set(unit_and_descendant_ids(unit))
    return SeriesMatrix(
        sessions=matrix.sessions,
        people=[(user, name) for user, name in matrix.people if user.unit_id in ids],
        cells=matrix.cells,
    )


def _series_page(series: Series, unit: Unit | None):
    matrix = _matrix(series, unit)
    return render_template(
        "attendance/series.html",
        series=series,
        unit=unit,
        matrix=matrix,
        units=unit_report(matrix),
        labels={
            session.id: session.starts_at.astimezone(zone(series.timezone)).strftime("%m-%d %H:%M")
            for session in matrix.sessions
        },
        marks=MARKS,
        status_name=status_name,
        live_missing=not_joined_live(matrix),
    )


@bp.get("/series/<int:series_id>/attendance")
def series_report(series_id: int):
    """Participants × sessions with totals, and each unit's rate, best first."""
    return _series_page(db.get_or_404(Series, series_id), None)


@bp.get("/series/<int:series_id>/units/<int:unit_id>/attendance")
def unit_attendance(series_id: int, unit_id: int):
    """The same for one unit (and the units below it): what its liaison sees."""
    return _series_page(db.get_or_404(Series, series_id), db.get_or_404(Unit, unit_id))


@bp.get("/series/<int:series_id>/attendance.csv")
def series_report_csv(series_id: int):
    series = db.get_or_404(Series, series_id)
    return download(
        series_csv(_matrix(series), series.timezone),
        "text/csv; charset=utf-8",
        f"attendance-series-{series.id}.csv",
    )


@bp.get("/series/<int:series_id>/attendance.xlsx")
def series_report_xlsx(series_id: int):
    series = db.get_or_404(Series, series_id)
    matrix = _matrix(series)
    return download(
        series_xlsx(matrix, unit_report(matrix), series.timezone, title=series.title),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        f"attendance-series-{series.id}.xlsx",
    )


# --- room check-in ----------------------------------------------------------------------


class CheckInForm(FlaskForm):
    code = LineField(
        _l("Check-in code on the room screen"),
        validators=[DataRequired(message=_l("Please enter the code.")), Length(max=20)],
    )


@bp.get("/sessions/<int:session_id>/checkin/screen")
def checkin_screen(session_id: int):
    """For the room's screen: the code of this minute and its QR code (the page renews
    itself when the minute turns)."""
    session = db.get_or_404(LectureSession, session_id)
    now = utcnow()
    code = current_code(session.id, now=now)
    link = public_url("attendance.checkin", session_id=session.id, code=code)
    return render_template(
        "attendance/checkin_screen.html",
        session=session,
        series=session.series,
        code=code,
        qr=qr_svg(link),
        seconds_left=60 - now.second,
    )


@bp.route("/sessions/<int:session_id>/checkin", methods=["GET", "POST"])
def checkin(session_id: int):
    """A participant in the room checks in with the code (or by scanning the QR code)."""
    session = db.get_or_404(LectureSession, session_id)
    if not may_join(current_user, session):
        abort(403)
    form = CheckInForm()
    if request.method == "GET" and request.args.get("code"):
        form.code.data = request.args.get("code", "")[:20]
    now = utcnow()
    if form.validate_on_submit():
        if not room_is_open(session, now=now):
            form.code.errors.append(_("Check-in is open only while the session is on."))
        elif not code_is_valid(session.id, form.code.data, now=now):
            form.code.errors.append(
                _(
                    "This code is not valid (any more): codes change every minute. "
                    "Enter the one on the screen now."
                )
            )
        else:
            check_in(session.id, current_user.id, now=now)
            db.session.commit()
            flash(
                _("Checked in: your attendance counts for the time the broadcast is live."), "info"
            )
            return redirect(url_for("sessions.detail", session_id=session.id))
    return render_template(
        "attendance/checkin.html", session=session, series=session.series, form=form
    ), (400 if form.errors else 200)


# --- excuse notes -----------------------------------------------------------------------


class ExcuseForm(FlaskForm):
    text = ParagraphField(
        _l("Why you could not attend (the organizer reads it)"),
        validators=[DataRequired(message=_l("Please write your reason.")), Length(max=1000)],
    )


@bp.post("/sessions/<int:session_id>/excuse")
def excuse(session_id: int):
    """A participant explains an absence; an organizer decides."""
    session = db.get_or_404(LectureSession, session_id)
    if not may_join(current_user, session) or session.starts_at > utcnow():
        abort(403)
    form = ExcuseForm()
    if form.validate_on_submit():
        submit_excuse(session, current_user, form.text.data, now=utcnow())
        db.session.commit()
        flash(_("Sent. The organizer will accept or reject it; you see the answer here."), "info")
    else:
        for error in form.text.errors:
            flash(error, "error")
    return redirect(url_for("attendance.mine"))


@bp.post("/sessions/<int:session_id>/excuses/<int:note_id>/<decision>")
def decide(session_id: int, note_id: int, decision: str):
    session = db.get_or_404(LectureSession, session_id)
    note = db.get_or_404(ExcuseNote, note_id)
    if note.session_id != session.id or decision not in ("accept", "reject"):
        abort(404)
    if ActionForm().validate_on_submit() and note.accepted is None:
        accept = decision == "accept"
        decide_excuse(
            note,
            accept=accept,
            by=current_user,
            now=utcnow(),
            reason=_("Excuse note accepted: %(text)s", text=note.text),
        )
        db.session.commit()
        flash(_("Accepted: the status is now excused.") if accept else _("Rejected."), "info")
    return redirect(url_for("attendance.session_report", session_id=session.id))


@bp.post("/sessions/<int:session_id>/attendance/recompute")
def recompute(session_id: int):
    """Work the final records out again from every event, later ones included."""
    session = db.get_or_404(LectureSession, session_id)
    if ActionForm().validate_on_submit():
        finalise(session, now=utcnow(), by_id=current_user.id)
        db.session.commit()
        flash(
            _("Recomputed from every event, including those that came after it was final."), "info"
        )
    return redirect(url_for("attendance.session_report", session_id=session.id))


# --- platform imports -------------------------------------------------------------------


class ImportForm(FlaskForm):
    sheet = FileField(_l("The platform's export (.xlsx or .csv)"))
    platform = SelectField(
        _l("Platform"),
        choices=as_choices([(key, preset.label) for key, preset in PRESETS.items()]),
    )
    name = LineField(_l("Column of the name (empty: as the platform names it)"))
    phone = LineField(_l("Column of the mobile number"))
    unit = LineField(_l("Column of the unit or department"))
    join = LineField(_l("Column of the join time"))
    leave = LineField(_l("Column of the leave time"))
    duration = LineField(_l("Column of the duration (minutes)"))


@bp.route("/sessions/<int:session_id>/attendance/import", methods=["GET", "POST"])
def import_upload(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    form = ImportForm()
    if form.validate_on_submit():
        upload = request.files.get("sheet")
        columns = dict(PRESETS[form.platform.data].columns)
        for role in ROLES:
            typed = (getattr(form, role).data or "").strip()
            if typed:
                columns[role] = (typed[:100],)
        with unit_of_work(form) as work:
            if upload is None or not upload.filename:
                raise InvalidInput(_("Please choose a file."), field="sheet")
            lines = read_table(upload.filename, upload.read(), max_rows=MAX_ROWS)
            rows = read_rows(lines, columns, session)
            if not rows:
                raise InvalidInput(
                    _(
                        "No header row with a name column and a join time or duration column "
                        "was found in the first ten rows. Check the platform or type the "
                        "column names below."
                    ),
                    field="sheet",
                )
            match(rows, session)
            batch = AttendanceImport(
                session_id=session.id,
                filename=upload.filename[:200],
                platform=form.platform.data,
                rows=rows_to_json(rows),
                created_by_id=current_user.id,
            )
            db.session.add(batch)
        if work.done:
            return redirect(
                url_for("attendance.import_preview", session_id=session.id, import_id=batch.id)
            )
    return render_template(
        "attendance/import_upload.html", session=session, series=session.series, form=form
    ), (400 if form.errors or form.form_errors else 200)


@bp.route("/sessions/<int:session_id>/attendance/import/<int:import_id>", methods=["GET", "POST"])
def import_preview(session_id: int, import_id: int):
    session = db.get_or_404(LectureSession, session_id)
    batch = db.get_or_404(AttendanceImport, import_id)
    if batch.session_id != session.id:
        abort(404)
    rows = rows_from_json(batch.rows)
    enrolled = [row.user for row in session_rows(session, computed=True)]
    names = {user.id: user.display_name for user in enrolled}
    form = ActionForm()
    if request.method == "POST" and form.validate_on_submit():
        if batch.applied_at is not None:
            flash(_("This file was imported already."), "error")
            return redirect(url_for("attendance.session_report", session_id=session.id))
        choices = {row.line: request.form.get(f"match-{row.line}", type=int) for row in rows}
        match_by_hand(rows, choices, allowed=set(names))
        count = apply(rows, session, now=utcnow())
        batch.rows, batch.applied_at = rows_to_json(rows), utcnow()
        db.session.commit()
        left = sum(1 for row in rows if row.user_id is None or row.problems)
        flash(
            _(
                "Imported: time for %(count)d participants. %(left)d rows were left out "
                "(unmatched or unreadable).",
                count=count,
                left=left,
            ),
            "info",
        )
        return redirect(url_for("attendance.session_report", session_id=session.id))
    return render_template(
        "attendance/import_preview.html",
        session=session,
        series=session.series,
        batch=batch,
        rows=rows,
        names=names,
        enrolled=sorted(enrolled, key=lambda user: user.display_name),
        form=form,
        tz=zone(session.series.timezone),
    )


@bp.get("/series/<int:series_id>/attendance/closing.xlsx")
def closing(series_id: int):
    """结班: the workbook a training office files at the end of a class."""
    series = db.get_or_404(Series, series_id)
    return download(
        closing_workbook(series, _matrix(series), now=utcnow()),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        f"closing-series-{series.id}.xlsx",
    )


@bp.get("/series/<int:series_id>/attendance/signin.pdf")
def signin_sheets(series_id: int):
    """The sign-in sheets (签到表) of every session that has started, to print."""
    series = db.get_or_404(Series, series_id)
    return download(
        signin_pdf(series, _matrix(series), now=utcnow()),
        "application/pdf",
        f"signin-series-{series.id}.pdf",
        inline=True,  # opens in the browser's viewer, to print
    )
