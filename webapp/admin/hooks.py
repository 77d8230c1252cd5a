"""The admin's outgoing webhooks: where events go, which ones, their deliveries (sent,
waiting, failed, with the error), sending one again, a new secret."""

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from webapp.admin.forms import HookForm
from webapp.admin.views import bp
from webapp.db import db, utcnow
from webapp.forms import ActionForm, as_choices
from webapp.hooks.services import (
    EVENT_TYPES,
    create_hook,
    event_hooks,
    recent_deliveries,
    redeliver,
    remove_hook,
    rotate_secret,
    update_hook,
)
from webapp.reminders.models import Delivery, DeliveryKind, Webhook, WebhookKind
from webapp.work import unit_of_work


def _form(**kwargs) -> HookForm:
    form = HookForm(**kwargs)
    form.events.choices = as_choices((key, f"{key} — {name}") for key, name in EVENT_TYPES.items())
    return form


def _hook_or_404(hook_id: int) -> Webhook:
    hook = db.get_or_404(Webhook, hook_id)
    if hook.kind != WebhookKind.EVENTS:
        abort(404)  # a series' or unit's robot is managed on its own pages
    return hook


@bp.route("/webhooks", methods=["GET", "POST"])
def webhooks():
    """Every outgoing webhook, and a form for a new one."""
    form = _form()
    secret = None
    if form.validate_on_submit():
        with unit_of_work(form) as work:
            hook = create_hook(form.name.data, form.url.data, form.events.data, now=utcnow())
            secret = hook.secret
        if work.done:
            flash(_("Webhook “%(name)s” added.", name=hook.name), "info")
            return _hook_page(hook, secret=secret)
    return render_template(
        "admin/webhooks.html", hooks=event_hooks(), form=form, event_types=EVENT_TYPES
    ), (400 if form.errors else 200)


def _hook_page(hook: Webhook, *, form: HookForm | None = None, secret: str | None = None):
    if form is None:
        form = _form(obj=hook, formdata=None)
        form.events.data = (hook.events or "").split(",")
        form.active.data = hook.is_active
    return render_template(
        "admin/webhook.html",
        hook=hook,
        form=form,
        secret=secret,
        deliveries=recent_deliveries(hook),
        action_form=ActionForm(),
    ), (400 if form.errors else 200)


@bp.route("/webhooks/<int:hook_id>", methods=["GET", "POST"])
def webhook(hook_id: int):
    hook = _hook_or_404(hook_id)
    form = _form()
    if not form.is_submitted():
        return _hook_page(hook)
    if form.validate():
        with unit_of_work(form) as work:
            update_hook(
                hook, form.name.data, form.url.data, form.events.data, form.active.data,
                now=utcnow(),
            )  # fmt: skip
        if work.done:
            flash(_("Saved."), "info")
            return redirect(url_for("admin.webhook", hook_id=hook.id))
    return _hook_page(hook, form=form)


@bp.post("/webhooks/<int:hook_id>/secret")
def webhook_secret(hook_id: int):
    hook = _hook_or_404(hook_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    with unit_of_work():
        secret = rotate_secret(hook, now=utcnow())
    flash(_("A new secret: the receiver must use it from now on."), "info")
    return _hook_page(hook, secret=secret)


@bp.post("/webhooks/<int:hook_id>/remove")
def webhook_remove(hook_id: int):
    hook = _hook_or_404(hook_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            remove_hook(hook, now=utcnow())
        if work.done:
            flash(_("Removed."), "info")
    return redirect(url_for("admin.webhooks"))


@bp.post("/webhooks/<int:hook_id>/deliveries/<int:delivery_id>/again")
def webhook_redeliver(hook_id: int, delivery_id: int):
    hook = _hook_or_404(hook_id)
    delivery = db.get_or_404(Delivery, delivery_id)
    if delivery.webhook_id != hook.id or delivery.kind != DeliveryKind.EVENT:
        abort(404)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            redeliver(delivery, now=utcnow())
        if work.done:
            flash(_("It will be sent again shortly."), "info")
    return redirect(url_for("admin.webhook", hook_id=hook.id))
