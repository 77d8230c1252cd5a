"""Reminder settings: a participant's own (mail, calendar alarm) and a series' rules and
group robots (organizers). The admin's view of the outbox is in webapp/admin."""

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from webapp.db import db, utcnow
from webapp.forms import ActionForm, as_choices
from webapp.people.models import Unit
from webapp.people.services import (
    update_preferences,
)
from webapp.people.units import (
    unit_tree,
)
from webapp.reminders.forms import PreferencesForm, RuleForm, WebhookForm
from webapp.reminders.models import Channel, ReminderRule, Webhook, WebhookKind
from webapp.reminders.reach import CHANNEL_NAMES, channel_order, channels_of_users, muted
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


@bp.route("/account/notifications", methods=["GET", "POST"])
def preferences():
    form = PreferencesForm(obj=current_user)
    channels = [c for c in channel_order() if c != Channel.EMAIL]
    off = muted(current_user.muted_channels)
    if not form.is_submitted():
        form.feed_alarm_minutes.data = current_user.feed_alarm_minutes or 0
        for channel in channels:
            form[channel.value].data = channel.value not in off
    if form.validate_on_submit():
        # Channels not on this page (turned off by the admin) keep the person's choice.
        shown = {channel.value for channel in channels}
        update_preferences(
            current_user,
            email_reminders=form.email_reminders.data,
            feed_alarm_minutes=form.feed_alarm_minutes.data,
            muted_channels=(off - shown) | {name for name in shown if not form[name].data},
        )
        db.session.commit()
        flash(_("Saved."), "info")
        return redirect(url_for("reminders.preferences"))
    reach = channels_of_users([current_user], now=utcnow())[current_user.id]
    return render_template(
        "reminders/preferences.html",
        form=form,
        channels=channels,
        reach=reach,
        channel_names=CHANNEL_NAMES,
    )


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
