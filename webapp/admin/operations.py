"""The admin's view of the machinery: workers and the outbox (missed, failed, retry),
feeds that failed to publish, and the local mail folder."""

import re
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from webapp.admin.views import bp
from webapp.db import db, utcnow
from webapp.feeds.services import (
    failed_feeds,
)
from webapp.feeds.services import (
    retry_failed_feeds as retry_feeds,
)
from webapp.forms import ActionForm
from webapp.reminders.models import Delivery
from webapp.reminders.outbox import (
    delivery_counts,
    failed_deliveries,
    missed_deliveries,
    retry_all_failed,
    retry_delivery,
    worker_heartbeats,
)
from webapp.work import unit_of_work

MAIL_NAME = re.compile(r"[\w.-]+\.eml", re.ASCII)
MAX_MAIL_NAME = 200


@bp.get("/status")
def status():
    now, config = utcnow(), current_app.config
    workers = [
        # Not responding: its claims are no longer renewed and are being taken over.
        (worker, (now - worker.last_beat_at).total_seconds() > config["DISPATCH_LEASE_SECONDS"])
        for worker in worker_heartbeats()
    ]
    return render_template(
        "admin/status.html",
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


@bp.post("/deliveries/<int:delivery_id>/retry")
def retry(delivery_id: int):
    delivery = db.get_or_404(Delivery, delivery_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            retry_delivery(delivery, now=utcnow())
        if work.done:
            flash(_("It will be sent again shortly."), "info")
    return redirect(url_for("admin.status"))


@bp.post("/deliveries/retry-failed")
def retry_failed():
    if ActionForm().validate_on_submit():
        count = retry_all_failed(now=utcnow())
        db.session.commit()
        flash(_("%(count)d messages will be sent again.", count=count), "info")
    return redirect(url_for("admin.status"))


@bp.post("/feeds/retry-failed")
def retry_failed_feeds():
    if ActionForm().validate_on_submit():
        count = retry_feeds(now=utcnow())
        db.session.commit()
        flash(_("%(count)d calendar feeds will be published again.", count=count), "info")
    return redirect(url_for("admin.status"))


def _mail_folder() -> Path | None:
    url = urlsplit(current_app.config["MAIL_URL"])
    return Path(unquote(url.path)) if url.scheme == "file" else None


@bp.get("/mail")
def mailbox():
    """The embedded default's mail sink: what the worker would have sent, newest first."""
    folder = _mail_folder()
    files = sorted(folder.glob("*.eml"), reverse=True)[:200] if folder and folder.exists() else []
    messages = [(path.name, _parse(path)) for path in files]
    return render_template("admin/mailbox.html", folder=folder, messages=messages)


@bp.get("/mail/<name>")
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
        "admin/mail_message.html",
        name=name,
        message=message,
        text=body.get_content() if body else "",
        attachments=[part.get_filename() for part in message.iter_attachments()],
    )


def _parse(path: Path):
    with path.open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)
