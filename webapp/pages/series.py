"""Series pages: the participant's view, the organizer's editing and overview, enrollment
and the participant import, the liaison's roster."""

from io import BytesIO

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from webapp.db import db, utcnow
from webapp.feeds.fetches import (
    last_fetches,
)
from webapp.forms import ActionForm, as_choices
from webapp.people.models import Unit
from webapp.people.units import (
    unit_tree,
)
from webapp.reminders.models import DeliveryKind
from webapp.reminders.outbox import unreached_counts
from webapp.reminders.reach import (
    CHANNEL_NAMES,
    enrolled_reach,
    reach_display,
    reach_sentence,
)
from webapp.series import importing, sheets
from webapp.series.access import (
    active_enrollment,
    can_manage_series,
)
from webapp.series.enrollment import (
    enroll_unit,
    enrolled_count,
    enrolled_count_by_unit,
    leave_series,
    participants_of,
    remove_enrollment,
    self_enroll,
    set_unit_quota,
    unit_quotas,
)
from webapp.series.forms import (
    AddParticipantForm,
    EnrollUnitForm,
    ImportConfirmForm,
    ImportUploadForm,
    LoginLinksForm,
    QuotaForm,
    SeriesForm,
)
from webapp.series.models import Enrollment, EnrollmentStatus, ImportBatch, Series, Visibility
from webapp.series.rosters import (
    confirm_roster,
    rosters_for_liaison,
    unit_roster,
)
from webapp.series.services import (
    archive_series,
    create_series,
    unarchive_series,
    update_series,
)
from webapp.sessions.participants import add_participant as add_participant_service
from webapp.sessions.schedule import (
    load_series_page,
    recent_changes,
    session_counts,
)
from webapp.sessions.services import (
    publish_series,
)
from webapp.text import natural_key
from webapp.work import unit_of_work
from webapp.zones import user_timezone_name

bp = Blueprint("series", __name__, url_prefix="/series")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def unit_choices(blank: str | None = None):
    choices = [(0, blank)] if blank is not None else []
    return as_choices(
        choices + [(unit.id, "　" * depth + unit.name) for unit, depth in unit_tree()]
    )


# --- participant view ---------------------------------------------------------------------


@bp.get("/<int:series_id>")
def detail(series_id: int):
    series = load_series_page(series_id)
    if series is None:
        abort(404)
    enrollment = active_enrollment(current_user, series) if current_user.is_authenticated else None
    return render_template(
        "series/detail.html",
        series=series,
        can_manage=can_manage_series(current_user, series),
        enrolled_count=enrolled_count(series),
        enrollment=enrollment,
        rosters=(
            rosters_for_liaison(current_user, series_id=series.id)
            if current_user.is_authenticated
            else []
        ),
        action_form=ActionForm(),
    )


@bp.post("/<int:series_id>/enroll")
def enroll_self(series_id: int):
    series = db.get_or_404(Series, series_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            enrollment = self_enroll(current_user, series, now=utcnow())
        if work.done:
            if enrollment.status == EnrollmentStatus.WAITLISTED:
                flash(_("The series is full; you are on the waitlist."), "info")
            else:
                flash(_("You are enrolled."), "info")
    return redirect(url_for("series.detail", series_id=series.id))


@bp.post("/<int:series_id>/leave")
def leave(series_id: int):
    series = db.get_or_404(Series, series_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            leave_series(current_user, series, now=utcnow())
        if work.done:
            flash(_("You have left the series."), "info")
    return redirect(url_for("series.detail", series_id=series.id))


# --- creating and editing -----------------------------------------------------------------


def _series_fields(form: SeriesForm) -> dict:
    """What the form says; attendance thresholds left empty keep their value (or default)."""
    attendance = {
        name: getattr(form, name).data
        for name in (
            "attendance_share",
            "attendance_late_minutes",
            "attendance_gap_minutes",
            "presence_checks",
            "presence_answer_seconds",
            "credit_minutes",
        )
        if getattr(form, name).data is not None
    }
    return attendance | {
        "makeup_days": form.makeup_days.data,
        "title": form.title.data or "",
        "description": form.description.data or "",
        "timezone": form.timezone.data,
        "visibility": Visibility(form.visibility.data),
        "capacity": form.capacity.data,
        "allows_self_enrollment": form.allows_self_enrollment.data,
    }


@bp.route("/new", methods=["GET", "POST"])
def new():
    form = SeriesForm(timezone=current_app.config["DEFAULT_TIMEZONE"])
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            series = create_series(organizer=current_user, now=utcnow(), **_series_fields(form))
        if work.done:
            flash(_("The series was created as a draft. Add its sessions next."), "info")
            return redirect(url_for("series.manage", series_id=series.id))
    return render_template("series/form.html", form=form, series=None)


@bp.route("/<int:series_id>/edit", methods=["GET", "POST"])
def edit(series_id: int):
    series = db.get_or_404(Series, series_id)
    form = SeriesForm(obj=series)
    if request.method == "GET":
        form.visibility.data = series.visibility.value
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            update_series(series, now=utcnow(), **_series_fields(form))
        if work.done:
            flash(_("Saved."), "info")
            return redirect(url_for("series.manage", series_id=series.id))
    return render_template("series/form.html", form=form, series=series)


def _status_action(series_id: int, action, done_message: str):
    series = db.get_or_404(Series, series_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            action(series)
        if work.done:
            flash(done_message, "info")
    return redirect(url_for("series.manage", series_id=series.id))


@bp.post("/<int:series_id>/publish")
def publish(series_id: int):
    return _status_action(
        series_id,
        lambda s: publish_series(s, now=utcnow()),
        _("Published: participants can now see the series.")
        + " "
        + reach_sentence(
            enrolled_reach(series_id, DeliveryKind.REMINDER, now=utcnow()), now=utcnow()
        ),
    )


@bp.post("/<int:series_id>/archive")
def archive(series_id: int):
    return _status_action(series_id, archive_series, _("Archived."))


@bp.post("/<int:series_id>/unarchive")
def unarchive(series_id: int):
    return _status_action(series_id, unarchive_series, _("Back from the archive."))


# --- the organizer's overview --------------------------------------------------------------


@bp.get("/<int:series_id>/manage")
def manage(series_id: int):
    series = load_series_page(series_id)
    return render_template(
        "series/manage.html",
        series=series,
        counts=session_counts(series),
        enrolled=enrolled_count(series),
        by_unit=enrolled_count_by_unit(series),
        waitlist=participants_of(series, EnrollmentStatus.WAITLISTED),
        changes=recent_changes(series),
        action_form=ActionForm(),
        reach=enrolled_reach(series.id, DeliveryKind.REMINDER, now=utcnow()),
        not_told=unreached_counts(series.id),
    )


# --- participants ---------------------------------------------------------------------------


def _participant_forms(series: Series):
    add_form = AddParticipantForm(prefix="add")
    add_form.unit_id.choices = unit_choices(blank=_("(none)"))
    unit_form = EnrollUnitForm(prefix="unit")
    unit_form.unit_id.choices = unit_choices()
    quota_form = QuotaForm(prefix="quota")
    quota_form.unit_id.choices = unit_choices()
    return add_form, unit_form, quota_form


def links_form(series: Series) -> LoginLinksForm:
    form = LoginLinksForm(prefix="links")
    units = {e.user.unit for e in participants_of(series, EnrollmentStatus.ENROLLED) if e.user.unit}
    form.unit_id.choices = as_choices(
        [(0, "—")]
        + sorted(((unit.id, unit.name) for unit in units), key=lambda item: natural_key(item[1]))
    )
    return form


def _render_participants(series, add_form, unit_form, quota_form, warnings=(), status=200):
    enrollments = participants_of(series)
    return render_template(
        "series/participants.html",
        series=series,
        enrollments=enrollments,
        calendar_fetches=last_fetches([e.user_id for e in enrollments]),
        reach=reach_display([e.user for e in enrollments], now=utcnow()),
        links_form=links_form(series),
        channel_names=CHANNEL_NAMES,
        now=utcnow(),
        add_form=add_form,
        unit_form=unit_form,
        quota_form=quota_form,
        quotas=unit_quotas(series),
        warnings=warnings,
        action_form=ActionForm(),
    ), status


@bp.get("/<int:series_id>/participants")
def participants(series_id: int):
    series = db.get_or_404(Series, series_id)
    return _render_participants(series, *_participant_forms(series))


@bp.post("/<int:series_id>/participants/add")
def add_participant(series_id: int):
    series = db.get_or_404(Series, series_id)
    add_form, unit_form, quota_form = _participant_forms(series)
    if not add_form.validate_on_submit():
        return _render_participants(series, add_form, unit_form, quota_form, status=400)
    unit_id = add_form.unit_id.data
    with unit_of_work(add_form) as work:
        enrollment = add_participant_service(
            series,
            identifier=add_form.identifier.data,
            display_name=add_form.display_name.data,
            unit=db.session.get(Unit, unit_id) if unit_id else None,
            accept_warnings=add_form.accept_warnings.data,
            now=utcnow(),
        )
    if work.warnings:
        return _render_participants(
            series, add_form, unit_form, quota_form, warnings=work.warnings, status=409
        )
    if not work.done:
        return _render_participants(series, add_form, unit_form, quota_form, status=400)
    user = enrollment.user
    if enrollment.status == EnrollmentStatus.WAITLISTED:
        flash(
            _(
                "%(name)s is on the waitlist (the series or their unit is full).",
                name=user.display_name,
            ),
            "info",
        )
    else:
        flash(_("%(name)s is enrolled.", name=user.display_name), "info")
    return redirect(url_for("series.participants", series_id=series.id))


@bp.post("/<int:series_id>/participants/unit")
def add_unit(series_id: int):
    series = db.get_or_404(Series, series_id)
    add_form, unit_form, quota_form = _participant_forms(series)
    if not unit_form.validate_on_submit():
        return _render_participants(series, add_form, unit_form, quota_form, status=400)
    unit = db.get_or_404(Unit, unit_form.unit_id.data)
    counts = enroll_unit(
        unit, series, now=utcnow(), include_sub_units=unit_form.include_sub_units.data
    )
    db.session.commit()
    flash(
        _(
            "%(unit)s: %(enrolled)d enrolled, %(waitlisted)d on the waitlist, %(already)d "
            "already in the series.",
            unit=unit.name,
            **counts,
        ),
        "info",
    )
    return redirect(url_for("series.participants", series_id=series.id))


@bp.post("/<int:series_id>/participants/quota")
def set_quota(series_id: int):
    series = db.get_or_404(Series, series_id)
    add_form, unit_form, quota_form = _participant_forms(series)
    if not quota_form.validate_on_submit():
        return _render_participants(series, add_form, unit_form, quota_form, status=400)
    unit = db.get_or_404(Unit, quota_form.unit_id.data)
    set_unit_quota(series, unit, quota_form.quota.data, now=utcnow())
    db.session.commit()
    flash(_("Quota saved."), "info")
    return redirect(url_for("series.participants", series_id=series.id))


@bp.post("/<int:series_id>/participants/<int:enrollment_id>/remove")
def remove_participant(series_id: int, enrollment_id: int):
    series = db.get_or_404(Series, series_id)
    enrollment = db.get_or_404(Enrollment, enrollment_id)
    if enrollment.series_id != series.id:
        abort(404)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            promoted = remove_enrollment(enrollment, now=utcnow())
        if work.done:
            flash(_("%(name)s was removed.", name=enrollment.user.display_name), "info")
            for item in promoted:
                flash(
                    _("%(name)s moved up from the waitlist.", name=item.user.display_name), "info"
                )
    return redirect(url_for("series.participants", series_id=series.id))


# --- importing ------------------------------------------------------------------------------


@bp.route("/<int:series_id>/import", methods=["GET", "POST"])
def import_upload(series_id: int):
    series = db.get_or_404(Series, series_id)
    form = ImportUploadForm()
    if form.validate_on_submit():
        upload = form.sheet.data
        with unit_of_work(form) as work:
            rows = sheets.read_sheet(
                upload.filename or "",
                upload.read(),
                max_rows=current_app.config["MAX_IMPORT_ROWS"],
            )
            batch = importing.store_batch(
                series, upload.filename or "", rows, by=current_user, now=utcnow()
            )
        if work.done:
            return redirect(
                url_for("series.import_preview", series_id=series.id, batch_id=batch.id)
            )
    return render_template("series/import_upload.html", series=series, form=form), (
        400 if form.errors else 200
    )


@bp.get("/<int:series_id>/import/template.xlsx")
def import_template(series_id: int):
    return send_file(
        BytesIO(sheets.template_workbook()),
        mimetype=XLSX,
        as_attachment=True,
        download_name="学员导入模板.xlsx",
    )


def _batch(series: Series, batch_id: int) -> ImportBatch:
    batch = db.get_or_404(ImportBatch, batch_id)
    if batch.series_id != series.id:
        abort(404)
    return batch


@bp.route("/<int:series_id>/import/<int:batch_id>", methods=["GET", "POST"])
def import_preview(series_id: int, batch_id: int):
    series = db.get_or_404(Series, series_id)
    batch = _batch(series, batch_id)
    form = ImportConfirmForm()
    if batch.confirmed_at is not None:
        flash(_("This file has already been imported."), "info")
        return redirect(url_for("series.participants", series_id=series.id))
    units = _unit_choices_from(request.form, importing.unknown_unit_names(batch, series))
    if form.validate_on_submit() and request.form.get("action") != "preview":
        with unit_of_work(form) as work:
            result = importing.confirm_import(batch, series, units=units, now=utcnow())
        if work.done:
            return render_template(
                "series/import_done.html",
                series=series,
                batch=batch,
                result=result,
                action_form=ActionForm(),
            )
    preview = importing.preview_import(batch, series, units=units, now=utcnow())
    return render_template(
        "series/import_preview.html",
        series=series,
        batch=batch,
        preview=preview,
        outcomes=importing,
        form=form,
        tree=unit_tree(),
    )


def _unit_choices_from(posted, names: list[str]) -> dict | None:
    """The organizer's choice for each unknown unit name (`unit-N`: `u<id>` for an existing
    unit, `new` to create it; `parent-N`: the new unit's parent, 0 for the top level). None
    before they have chosen anything."""
    if not any(key.startswith("unit-") for key in posted):
        return None
    choices = {}
    for index, name in enumerate(names):
        value = posted.get(f"unit-{index}", "")
        parent_id = posted.get(f"parent-{index}", type=int) or None
        parent = db.session.get(Unit, parent_id) if parent_id else None
        if value.startswith("u") and value[1:].isdigit():
            existing = db.session.get(Unit, int(value[1:]))
            choices[name] = importing.UnitChoice(existing=existing)
        elif value == "new":
            choices[name] = importing.UnitChoice(create=True, parent=parent)
        else:
            choices[name] = importing.UnitChoice()
    return choices


# --- liaisons -------------------------------------------------------------------------------


@bp.route("/<int:series_id>/units/<int:unit_id>/roster", methods=["GET", "POST"])
def roster(series_id: int, unit_id: int):
    series = db.get_or_404(Series, series_id)
    unit = db.get_or_404(Unit, unit_id)
    form = ActionForm()
    if form.validate_on_submit():
        count = confirm_roster(series, unit, by=current_user, now=utcnow())
        db.session.commit()
        flash(_("%(count)d participants confirmed.", count=count), "info")
        return redirect(url_for("series.roster", series_id=series.id, unit_id=unit.id))
    return render_template(
        "series/roster.html",
        series=series,
        unit=unit,
        enrollments=unit_roster(series, unit),
        form=form,
        user_timezone=user_timezone_name(current_user),
        now=utcnow(),
    )
