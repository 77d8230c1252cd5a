"""Reminder settings (participants, organizers) and the admin's view of the outbox,
the workers and the local mail sink."""

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from webapp.db import db, utcnow
from webapp.feeds.services import (
    failed_feeds,
)
from webapp.feeds.services import (
    retry_failed_feeds as retry_feeds,
)
from webapp.forms import ActionForm, as_choices
from webapp.people.models import Unit
from webapp.people.services import unit_tree, update_preferences
from webapp.reminders.forms import PreferencesForm, RuleForm, WebhookForm
from webapp.reminders.models import Delivery, ReminderRule, Webhook, WebhookKind
from webapp.reminders.outbox import (
    delivery_counts,
    failed_deliveries,
    missed_deliveries,
    retry_all_failed,
    retry_delivery,
    worker_heartbeats,
)
from webapp.reminders.rules import (
    add_rule,
    add_webhook,
    delete_rule,
    may_attach_unit_robot,
    remove_webhook,
    rules_for,
    webhooks_for_series_page,
)
from webapp.series.models import Series
from webapp.work import unit_of_work

bp = Blueprint("reminders", __name__)

MAIL_NAME = re.compile(r"[\w.-]+\.eml", re.ASCII)
MAX_MAIL_NAME = 200


@bp.route("/account/notifications", methods=["GET", "POST"])
def preferences():
    form = PreferencesForm(obj=current_user)
    if not form.is_submitted():
        form.feed_alarm_minutes.data = current_user.feed_alarm_minutes or 0
    if form.validate_on_submit():
        update_preferences(
            current_user,
            email_reminders=form.email_reminders.data,
            feed_alarm_minutes=form.feed_alarm_minutes.data,
        )
        db.session.commit()
        flash(_("Saved."), "info")
        return redirect(url_for("reminders.preferences"))
    return render_template("reminders/preferences.html", form=form)


def _webhook_form(series) -> WebhookForm:
    form = WebhookForm(prefix="robot")
    form.scope.choices = as_choices(
        [(0, _("this series: %(title)s", title=series.title))]
        + [
            (unit.id, _("the unit %(name)s (all its series)", name=unit.name))
            for unit, _depth in unit_tree()
            if may_attach_unit_robot(current_user, unit)
        ]
    )
    return form


def _may_remove(webhook: Webhook, series) -> bool:
    """The series' own robots are its managers'; a unit robot is its unit's (admin, liaison)."""
    if webhook.series_id is not None:
        return webhook.series_id == series.id
    return may_attach_unit_robot(current_user, db.session.get(Unit, webhook.unit_id))


def _render_rules(series, form, webhook_form, status=200):
    webhooks = webhooks_for_series_page(series)
    return render_template(
        "reminders/rules.html",
        series=series,
        rules=rules_for(series),
        form=form,
        webhook_form=webhook_form,
        webhooks=webhooks,
        removable={w.id for w in webhooks if _may_remove(w, series)},
        action_form=ActionForm(),
    ), status


@bp.route("/series/<int:series_id>/reminders", methods=["GET", "POST"])
def rules(series_id: int):
    series = db.get_or_404(Series, series_id)
    form = RuleForm()
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            add_rule(series, form.minutes)
        if work.done:
            flash(_("Reminder added."), "info")
            return redirect(url_for("reminders.rules", series_id=series.id))
    return _render_rules(series, form, _webhook_form(series), 400 if form.errors else 200)


@bp.post("/series/<int:series_id>/robots")
def add_robot(series_id: int):
    series = db.get_or_404(Series, series_id)
    webhook_form = _webhook_form(series)
    if webhook_form.validate_on_submit():
        unit = db.session.get(Unit, webhook_form.scope.data) if webhook_form.scope.data else None
        with unit_of_work(webhook_form) as work:
            add_webhook(
                name=webhook_form.name.data,
                kind=WebhookKind(webhook_form.kind.data),
                url=webhook_form.url.data,
                secret=webhook_form.secret.data,
                series=None if unit else series,
                unit=unit,
                mentions_absent=webhook_form.mentions_absent.data,
                by=current_user,
            )
        if work.done:
            flash(_("Group robot added."), "info")
            return redirect(url_for("reminders.rules", series_id=series.id))
    return _render_rules(series, RuleForm(formdata=None), webhook_form, 400)


@bp.post("/series/<int:series_id>/robots/<int:webhook_id>/delete")
def remove_robot(series_id: int, webhook_id: int):
    series = db.get_or_404(Series, series_id)
    webhook = db.get_or_404(Webhook, webhook_id)
    if webhook not in webhooks_for_series_page(series):
        abort(404)
    if not _may_remove(webhook, series):
        abort(403)
    if ActionForm().validate_on_submit():
        remove_webhook(webhook)
        db.session.commit()
        flash(_("Group robot removed."), "info")
    return redirect(url_for("reminders.rules", series_id=series.id))


@bp.post("/series/<int:series_id>/reminders/<int:rule_id>/delete")
def remove_rule(series_id: int, rule_id: int):
    series = db.get_or_404(Series, series_id)
    rule = db.get_or_404(ReminderRule, rule_id)
    if rule.series_id != series.id:
        abort(404)
    if ActionForm().validate_on_submit():
        delete_rule(rule)
        db.session.commit()
        flash(_("Reminder removed."), "info")
    return redirect(url_for("reminders.rules", series_id=series.id))


@bp.get("/admin/status")
def status():
    now, config = utcnow(), current_app.config
    workers = [
        # Not responding: its claims are no longer renewed and are being taken over.
        (worker, (now - worker.last_beat_at).total_seconds() > config["DISPATCH_LEASE_SECONDS"])
        for worker in worker_heartbeats()
    ]
    return render_template(
        "reminders/status.html",
        workers=workers,
        live_workers={worker.worker_id for worker, stale in workers if not stale},
        missed=missed_deliveries(),
        counts=delivery_counts(),
        failed=failed_deliveries(),
        failed_feeds=failed_feeds(),
        now=now,
        action_form=ActionForm(),
        zone_name=current_app.config["DEFAULT_TIMEZONE"],
    )


@bp.post("/admin/deliveries/<int:delivery_id>/retry")
def retry(delivery_id: int):
    delivery = db.get_or_404(Delivery, delivery_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            retry_delivery(delivery, now=utcnow())
        if work.done:
            flash(_("It will be sent again shortly."), "info")
    return redirect(url_for("reminders.status"))


@bp.post("/admin/deliveries/retry-failed")
def retry_failed():
    if ActionForm().validate_on_submit():
        count = retry_all_failed(now=utcnow())
        db.session.commit()
        flash(_("%(count)d messages will be sent again.", count=count), "info")
    return redirect(url_for("reminders.status"))


@bp.post("/admin/feeds/retry-failed")
def retry_failed_feeds():
    if ActionForm().validate_on_submit():
        count = retry_feeds(now=utcnow())
        db.session.commit()
        flash(_("%(count)d calendar feeds will be published again.", count=count), "info")
    return redirect(url_for("reminders.status"))


def _mail_folder() -> Path | None:
    url = urlsplit(current_app.config["MAIL_URL"])
    return Path(unquote(url.path)) if url.scheme == "file" else None


@bp.get("/admin/mail")
def mailbox():
    """The embedded default's mail sink: what the worker would have sent, newest first."""
    folder = _mail_folder()
    files = sorted(folder.glob("*.eml"), reverse=True)[:200] if folder and folder.exists() else []
    messages = [(path.name, _parse(path)) for path in files]
    return render_template("reminders/mailbox.html", folder=folder, messages=messages)


@bp.get("/admin/mail/<name>")
def mail_message(name: str):
    folder = _mail_folder()
    if len(name) > MAX_MAIL_NAME or not MAIL_NAME.fullmatch(name):
        abort(400)
    if folder is None:
        abort(404)
    path = folder / name
    if not path.is_file():
        abort(404)
    message = _parse(path)
    body = message.get_body(preferencelist=("plain",))
    return render_template(
        "reminders/mail_message.html",
        name=name,
        message=message,
        text=body.get_content() if body else "",
        attachments=[part.get_filename() for part in message.iter_attachments()],
    )


def _parse(path: Path):
    with path.open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)
