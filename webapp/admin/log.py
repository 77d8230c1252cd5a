"""The audit log (who changed what, when; filtered and exported) and the settings an admin
changes at run time, with their history."""

from datetime import UTC, datetime, time, timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.exceptions import BadRequest

from webapp import audit, settings
from webapp.admin.forms import AuditFilterForm, SettingForm
from webapp.admin.views import bp
from webapp.attendance.exports import local_naive
from webapp.db import utcnow
from webapp.forms import as_choices
from webapp.i18n import format_clock, format_day
from webapp.spreadsheets import CSV, XLSX, csv_bytes, download, xlsx_bytes
from webapp.work import unit_of_work
from webapp.zones import zone

PAGE = 100
EXPORT_LIMIT = 50_000
SYSTEM, COMMAND_LINE = "system", "cli"


def _filter_form() -> AuditFilterForm:
    form = AuditFilterForm(request.args)
    form.actor.choices = as_choices(
        [("", _("Anyone")), (SYSTEM, _("the system (worker)")), (COMMAND_LINE, _("command line"))]
        + [(str(actor_id), name) for actor_id, name in audit.actors()]
    )
    form.object_type.choices = as_choices(
        [("", _("Anything"))] + [(key, str(name)) for key, name in audit.OBJECT_TYPES.items()]
    )
    form.action.choices = as_choices(
        [("", _("Any change"))] + [(key, str(name)) for key, name in audit.ACTIONS.items()]
    )
    return form


def _filters(form: AuditFilterForm) -> audit.Filters:
    """The filters the form asks for; a malformed one is refused (400) with its message."""
    if not form.validate():
        raise BadRequest("; ".join(str(e) for errors in form.errors.values() for e in errors))
    tz = zone(current_app.config["DEFAULT_TIMEZONE"])

    def start_of(day) -> datetime | None:
        return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC) if day else None

    actor = form.actor.data or ""
    return audit.Filters(
        actor_id=int(actor) if actor.isdigit() else None,
        via={SYSTEM: audit.Via.SYSTEM, COMMAND_LINE: audit.Via.CLI}.get(actor),
        object_type=form.object_type.data or None,
        object_id=form.object_id.data,
        series_id=form.series_id.data,
        action=form.action.data or None,
        since=start_of(form.since.data),
        until=start_of(form.until.data + timedelta(days=1)) if form.until.data else None,
    )


@bp.get("/audit")
def audit_log():
    """Who changed what and when, newest first, a hundred at a time."""
    form = _filter_form()
    try:
        filters = _filters(form)
    except BadRequest:
        return render_template("admin/audit.html", form=form, entries=[], older=None), 400
    before = request.args.get("before", type=int)
    rows = audit.entries(filters, before_id=before, limit=PAGE + 1)
    older = rows[PAGE - 1].id if len(rows) > PAGE else None
    args = {key: value for key, value in request.args.items() if value and key != "before"}
    return render_template(
        "admin/audit.html",
        form=form,
        entries=rows[:PAGE],
        older=url_for("admin.audit_log", before=older, **args) if older else None,
        newest=url_for("admin.audit_log", **args) if before else None,
        export_args=args,
        shown=_shown,
        actions=audit.ACTIONS,
        object_types=audit.OBJECT_TYPES,
        via_names=audit.VIA_NAMES,
    )


def _shown(value) -> str:
    """A detail as a reader takes it: times in the site's zone, yes/no, lists joined."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list):
        return "、".join(_shown(part) for part in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_shown(part)}" for key, part in value.items())
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            tz_name = current_app.config["DEFAULT_TIMEZONE"]
            return f"{format_day(moment, tz_name)} {format_clock(moment, tz_name)}"
    return str(value)


HEADERS = ("时间", "操作人", "途径", "操作", "对象类型", "对象编号", "对象", "系列编号", "详情")
WIDTHS = (18, 14, 10, 16, 12, 10, 40, 10, 80)


def _lines(entries, tz_name: str):
    for entry in entries:
        yield (
            local_naive(entry.at, tz_name),
            entry.actor_name or "",
            str(audit.VIA_NAMES.get(entry.via, entry.via)),
            str(audit.ACTIONS.get(entry.action, entry.action)),
            str(audit.OBJECT_TYPES.get(entry.object_type, entry.object_type)),
            entry.object_id,
            entry.object_label,
            entry.series_id,
            audit.details_text(entry.details),
        )


@bp.get("/audit.<any(csv, xlsx):format>")
def audit_export(format: str):  # noqa: A002
    """The filtered log as CSV or XLSX (the newest 50,000 entries at most)."""
    filters = _filters(_filter_form())
    rows = audit.entries(filters, limit=EXPORT_LIMIT)
    tz_name = current_app.config["DEFAULT_TIMEZONE"]
    name = f"audit-{utcnow():%Y%m%d-%H%M}.{format}"
    if format == "csv":
        return download(csv_bytes(HEADERS, _lines(rows, tz_name)), CSV, name)
    data = xlsx_bytes("审计日志", HEADERS, _lines(rows, tz_name), WIDTHS, title="云课堂审计日志")
    return download(data, XLSX, name)


@bp.route("/settings", methods=["GET", "POST"])
def settings_page():
    """Settings an admin changes while the product runs; each change is in the audit log."""
    forms = {name: SettingForm(prefix=name) for name in settings.SPECS}
    for name, form in forms.items():
        if form.submit.data and form.validate_on_submit():
            with unit_of_work(form) as work:
                changed = settings.change(name, form.value.data, by=current_user, now=utcnow())
            if work.done:
                flash(_("Saved.") if changed else _("Nothing changed."), "info")
                return redirect(url_for("admin.settings_page"))
        elif not form.is_submitted() or not form.submit.data:
            form.value.data = settings.value(name) if settings.is_saved(name) else ""
    rows = [
        {
            "name": name,
            "spec": spec,
            "saved": settings.is_saved(name),
            "default": spec.default(current_app.config),
            "form": forms[name],
        }
        for name, spec in settings.SPECS.items()
    ]
    history = audit.entries(audit.Filters(object_type="setting"), limit=50)
    labels = {name: spec.label for name, spec in settings.SPECS.items()}
    failed = any(form.errors for form in forms.values())
    return render_template("admin/settings.html", rows=rows, history=history, labels=labels), (
        400 if failed else 200
    )
