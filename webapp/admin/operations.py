"""The admin's view of the machinery: workers and the outbox (missed, failed, retry),
feeds that failed to publish, and the local mail folder."""

import json
import re
from datetime import datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from webapp.admin.views import bp
from webapp.db import database_size, db, utcnow
from webapp.feeds.services import (
    failed_feeds,
    waiting_feeds,
)
from webapp.feeds.services import (
    retry_failed_feeds as retry_feeds,
)
from webapp.forms import ActionForm
from webapp.reminders.channels import mail_folder, sink_folder
from webapp.reminders.models import Delivery
from webapp.reminders.outbox import (
    channel_counts,
    delivery_counts,
    failed_deliveries,
    missed_deliveries,
    retry_all_failed,
    retry_delivery,
    unreached_counts,
    worker_heartbeats,
)
from webapp.reminders.reach import CHANNEL_NAMES
from webapp.streaming.broadcasts import last_heard_from_stream_server
from webapp.work import unit_of_work
from webapp.zones import zone

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
        by_channel=channel_counts(),
        not_told=unreached_counts(),
        channel_names={**CHANNEL_NAMES, "webhook": _("Group robots and webhooks")},
        failed=failed_deliveries(),
        failed_feeds=failed_feeds(),
        waiting_feeds=waiting_feeds(),
        stream_heard=last_heard_from_stream_server(),
        streaming_on=bool(config["RTMP_INGEST_URL"]),
        database_size=database_size(),
        database_kind=db.engine.dialect.name,
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
    return mail_folder(current_app.config["MAIL_URL"])


@bp.get("/mail")
def mailbox():
    """The embedded default's sink for every channel: the mail, SMS, WeCom and DingTalk
    messages the worker would have sent, newest first."""
    folder = sink_folder(current_app.config["MAIL_URL"], current_app.instance_path)
    files = []
    if folder.exists():
        files = sorted(
            (path for path in folder.iterdir() if path.suffix in (".eml", ".json")),
            key=lambda path: path.name,
            reverse=True,
        )[:300]
    messages = [_entry(path) for path in files]
    return render_template(
        "admin/mailbox.html",
        folder=_mail_folder(),
        messages=messages,
        channel_names=CHANNEL_NAMES,
    )


def _entry(path: Path) -> dict:
    """One message of the sink, as the list shows it (a broken file shows as such)."""
    if path.suffix == ".eml":
        message = _parse(path)
        return {
            "channel": "email",
            "name": path.name,
            "date": message["Date"],
            "to": message["To"],
            "text": message["Subject"],
        }
    try:
        record = json.loads(path.read_text())
        sent_at = datetime.fromisoformat(str(record.get("at", "")))
        local = sent_at.astimezone(zone(current_app.config["DEFAULT_TIMEZONE"]))
        return {
            "channel": str(record.get("channel", "")),
            "name": None,
            "date": local.strftime("%Y-%m-%d %H:%M:%S"),
            "to": str(record.get("to", "")),
            "text": str(record.get("text", "")),
        }
    except (ValueError, OSError, AttributeError, TypeError):
        return {"channel": "?", "name": None, "date": "", "to": "", "text": path.name}


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
