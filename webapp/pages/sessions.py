"""Session pages: the participant's session page and the organizer's editing, repeating,
rescheduling and cancelling, and the lectures inside a session."""

from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from webapp.db import db, utcnow
from webapp.forms import ActionForm
from webapp.people.models import Speaker
from webapp.reminders.models import DeliveryKind
from webapp.reminders.reach import enrolled_reach, reach_sentence
from webapp.series.access import (
    active_enrollment,
    can_manage_series,
)
from webapp.series.models import Series
from webapp.sessions.forms import (
    CancelForm,
    LectureForm,
    RepeatForm,
    RescheduleForm,
    SessionForm,
)
from webapp.sessions.joining import (
    join_session,
    may_join,
    room_is_open,
    room_opens_at,
)
from webapp.sessions.lectures import (
    add_lecture,
    delete_lecture,
    move_lecture,
    update_lecture,
)
from webapp.sessions.models import Lecture, LectureSession, StreamMode
from webapp.sessions.schedule import time_participants_had
from webapp.sessions.services import (
    cancel_session,
    create_repeated_sessions,
    create_session,
    delete_session,
    reschedule_session,
    update_session,
)
from webapp.sessions.slots import (
    Frequency,
    plan_repeats,
    slot_from_local,
)
from webapp.work import unit_of_work
from webapp.zones import (
    local_to_utc,
    zone,
)

bp = Blueprint("sessions", __name__)


def managed_session(session_id: int) -> LectureSession:
    return db.get_or_404(LectureSession, session_id)


def _local_parts(moment: datetime, tz_name: str):
    local = moment.astimezone(zone(tz_name))
    return local.date(), local.time().replace(second=0, microsecond=0)


def _show_times(form, session: LectureSession) -> None:
    """Fill a form's date and clock fields with the session's time in its series' zone."""
    tz_name = session.series.timezone
    form.day.data, form.start.data = _local_parts(session.starts_at, tz_name)
    form.end.data = _local_parts(session.ends_at, tz_name)[1]


def _slot(form, session: LectureSession):
    return slot_from_local(form.day.data, form.start.data, form.end.data, session.series.timezone)


def _attempt(form, action):
    """Run a service call as one unit of work; a broken rule shows on the form. Returns
    (done, warnings to confirm)."""
    with unit_of_work(form) as work:
        action()
    return work.done, work.warnings


# --- participant view ---------------------------------------------------------------------


@bp.get("/sessions/<int:session_id>")
def detail(session_id: int):
    session = db.get_or_404(LectureSession, session_id)
    enrolled = (
        current_user.is_authenticated and active_enrollment(current_user, session.series)
    ) is not None
    return render_template(
        "sessions/detail.html",
        session=session,
        series=session.series,
        can_manage=can_manage_series(current_user, session.series),
        is_enrolled=enrolled,
        now=utcnow(),
        room_open=room_is_open(session, now=utcnow()),
        room_opens_at=room_opens_at(session),
        was=time_participants_had(session),
    )


@bp.post("/sessions/<int:session_id>/join")
def join(session_id: int):
    """One click: remember that the participant joined, then open the live room."""
    session = db.get_or_404(LectureSession, session_id)
    if not may_join(current_user, session):
        abort(403)
    if not ActionForm().validate_on_submit():
        abort(400)
    with unit_of_work() as work:
        room = join_session(session, current_user, now=utcnow())
    if not work.done:
        return redirect(url_for("sessions.detail", session_id=session.id))
    return redirect(room)


# --- creating -----------------------------------------------------------------------------


@bp.route("/series/<int:series_id>/sessions/new", methods=["GET", "POST"])
def new(series_id: int):
    series = db.get_or_404(Series, series_id)
    single = SessionForm(prefix="one")
    repeat = RepeatForm(prefix="repeat")
    warnings: list[str] = []
    mode = request.form.get("mode", "repeat" if not series.sessions else "one")
    if request.method == "POST" and mode == "one" and single.validate_on_submit():
        ok, warnings = _attempt(single, lambda: _create_one(series, single))
        if ok:
            flash(_("Session added."), "info")
            return redirect(url_for("series.manage", series_id=series.id))
    elif request.method == "POST" and mode == "repeat" and repeat.validate_on_submit():
        ok, warnings = _attempt(repeat, lambda: _create_repeat(series, repeat))
        if ok:
            flash(_("%(count)d sessions added.", count=repeat.count.data), "info")
            return redirect(url_for("series.manage", series_id=series.id))
    status = 200 if request.method == "GET" else (409 if warnings else 400)
    return render_template(
        "sessions/new.html",
        series=series,
        single=single,
        repeat=repeat,
        mode=mode,
        warnings=warnings,
    ), status


def _create_one(series: Series, form: SessionForm) -> None:
    slot = slot_from_local(form.day.data, form.start.data, form.end.data, series.timezone)
    create_session(
        series,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        title=form.title.data or "",
        location=form.location.data,
        join_url=form.join_url.data,
        now=utcnow(),
        accept_warnings=form.accept_warnings.data,
        stream_mode=StreamMode(form.stream_mode.data),
    )


def _create_repeat(series: Series, form: RepeatForm) -> None:
    slots = plan_repeats(
        form.first_day.data,
        form.start.data,
        form.end.data,
        form.count.data,
        Frequency(form.frequency.data),
        series.timezone,
    )
    create_repeated_sessions(
        series,
        slots,
        title_template=form.title_template.data or "",
        location=form.location.data,
        join_url=form.join_url.data,
        now=utcnow(),
        accept_warnings=form.accept_warnings.data,
    )


# --- editing ------------------------------------------------------------------------------


@bp.route("/sessions/<int:session_id>/edit", methods=["GET", "POST"])
def edit(session_id: int):
    session = managed_session(session_id)
    form = SessionForm(obj=session)
    if request.method == "GET":
        _show_times(form, session)
    warnings: list[str] = []
    if form.validate_on_submit():

        def save():
            slot = _slot(form, session)
            update_session(
                session,
                title=form.title.data or "",
                location=form.location.data,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                accept_warnings=form.accept_warnings.data,
                join_url=form.join_url.data,
                stream_mode=StreamMode(form.stream_mode.data),
            )

        ok, warnings = _attempt(form, save)
        if ok:
            flash(_("Saved."), "info")
            return redirect(url_for("sessions.agenda", session_id=session.id))
    return render_template("sessions/edit.html", session=session, form=form, warnings=warnings)


@bp.route("/sessions/<int:session_id>/reschedule", methods=["GET", "POST"])
def reschedule(session_id: int):
    session = managed_session(session_id)
    form = RescheduleForm()
    if request.method == "GET":
        _show_times(form, session)
    warnings: list[str] = []
    if form.validate_on_submit():

        def save():
            slot = _slot(form, session)
            reschedule_session(
                session,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                by=current_user,
                now=utcnow(),
                reason=form.reason.data,
                accept_warnings=form.accept_warnings.data,
            )

        ok, warnings = _attempt(form, save)
        if ok:
            _flash_reach(_("Rescheduled."), session)
            return redirect(url_for("series.manage", series_id=session.series_id))
    return render_template(
        "sessions/reschedule.html",
        session=session,
        form=form,
        warnings=warnings,
        reach=_reach(session),
    )


def _reach(session: LectureSession):
    """Who hears of a change to this session: nobody before it is published."""
    if session.published_at is None:
        return None
    return enrolled_reach(session.series_id, DeliveryKind.NOTICE, now=utcnow())


def _flash_reach(done: str, session: LectureSession) -> None:
    reach = _reach(session)
    if reach is None:
        flash(done + " " + _("The session is not published: nobody is told."), "info")
    else:
        flash(done + " " + reach_sentence(reach, now=utcnow()), "info")


@bp.route("/sessions/<int:session_id>/cancel", methods=["GET", "POST"])
def cancel(session_id: int):
    session = managed_session(session_id)
    form = CancelForm()
    if form.validate_on_submit():
        ok, _warnings = _attempt(
            form,
            lambda: cancel_session(session, reason=form.reason.data, by=current_user, now=utcnow()),
        )
        if ok:
            _flash_reach(_("The session is cancelled."), session)
            return redirect(url_for("series.manage", series_id=session.series_id))
    return render_template(
        "sessions/cancel.html", session=session, form=form, reach=_reach(session)
    )


@bp.post("/sessions/<int:session_id>/delete")
def delete(session_id: int):
    session = managed_session(session_id)
    series_id = session.series_id
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            delete_session(session)
        if work.done:
            flash(_("Session deleted."), "info")
    return redirect(url_for("series.manage", series_id=series_id))


# --- lectures -----------------------------------------------------------------------------


def _speaker_choices() -> list[tuple[int, str]]:
    speakers = db.session.scalars(select(Speaker).order_by(Speaker.name)).all()
    return [(s.id, f"{s.name}（{s.affiliation}）" if s.affiliation else s.name) for s in speakers]


def _lecture_times(session: LectureSession, form: LectureForm):
    """A lecture's own times, entered as clock times on its session's local day."""
    if not form.start.data and not form.end.data:
        return None, None
    tz_name = session.series.timezone
    day = session.starts_at.astimezone(zone(tz_name)).date()
    start = local_to_utc(day, form.start.data, tz_name) if form.start.data else None
    end = local_to_utc(day, form.end.data, tz_name, field="end") if form.end.data else None
    return start, end


def _lecture_fields(session: LectureSession, form: LectureForm) -> dict:
    """What the lecture form says, as the lecture services take it."""
    starts_at, ends_at = _lecture_times(session, form)
    return {
        "title": form.title.data,
        "speakers": _selected_speakers(form),
        "starts_at": starts_at,
        "ends_at": ends_at,
    }


def _selected_speakers(form: LectureForm) -> list[Speaker]:
    ids = form.speaker_ids.data or []
    if not ids:
        return []
    return list(db.session.scalars(select(Speaker).where(Speaker.id.in_(ids))).all())


@bp.route("/sessions/<int:session_id>/agenda", methods=["GET", "POST"])
def agenda(session_id: int):
    """The organizer's page for one session: its agenda and the form to add a lecture."""
    session = managed_session(session_id)
    form = LectureForm()
    form.speaker_ids.choices = _speaker_choices()
    if form.validate_on_submit():

        def save():
            add_lecture(session, **_lecture_fields(session, form))

        ok, _warnings = _attempt(form, save)
        if ok:
            flash(_("Lecture added."), "info")
            return redirect(url_for("sessions.agenda", session_id=session.id))
    return render_template(
        "sessions/agenda.html", session=session, form=form, action_form=ActionForm()
    ), (400 if form.errors else 200)


def managed_lecture(lecture_id: int) -> Lecture:
    return db.get_or_404(Lecture, lecture_id)


@bp.route("/lectures/<int:lecture_id>/edit", methods=["GET", "POST"])
def edit_lecture(lecture_id: int):
    lecture = managed_lecture(lecture_id)
    session = lecture.session
    form = LectureForm(obj=lecture)
    form.speaker_ids.choices = _speaker_choices()
    if request.method == "GET":
        form.speaker_ids.data = [speaker.id for speaker in lecture.speakers]
        if lecture.starts_at and lecture.ends_at:
            form.start.data = _local_parts(lecture.starts_at, session.series.timezone)[1]
            form.end.data = _local_parts(lecture.ends_at, session.series.timezone)[1]
    if form.validate_on_submit():

        def save():
            update_lecture(lecture, **_lecture_fields(session, form), now=utcnow())

        ok, _warnings = _attempt(form, save)
        if ok:
            flash(_("Saved."), "info")
            return redirect(url_for("sessions.agenda", session_id=session.id))
    return render_template(
        "sessions/lecture_form.html", session=session, lecture=lecture, form=form
    )


@bp.post("/lectures/<int:lecture_id>/delete")
def remove_lecture(lecture_id: int):
    lecture = managed_lecture(lecture_id)
    session_id = lecture.session_id
    if ActionForm().validate_on_submit():
        delete_lecture(lecture)
        db.session.commit()
        flash(_("Lecture removed."), "info")
    return redirect(url_for("sessions.agenda", session_id=session_id))


@bp.post("/lectures/<int:lecture_id>/move/<direction>")
def reorder_lecture(lecture_id: int, direction: str):
    lecture = managed_lecture(lecture_id)
    if direction not in ("up", "down"):
        abort(404)
    if ActionForm().validate_on_submit():
        move_lecture(lecture, -1 if direction == "up" else 1)
        db.session.commit()
    return redirect(url_for("sessions.agenda", session_id=lecture.session_id))
