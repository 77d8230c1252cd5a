"""Messages about getting in: a sign-in code sent by SMS at once (the person is waiting
for it on the page), and one-time log-in links queued in the outbox for the worker, which
makes each link when it sends it (the outbox never holds a secret)."""

import uuid
from datetime import datetime

from flask import current_app

from webapp.db import db
from webapp.people.models import LoginCode, User
from webapp.reminders.channels import DeliveryError
from webapp.reminders.models import Channel, DeliveryKind
from webapp.reminders.outbox import sms_sent_today
from webapp.reminders.planning import _insert_ignoring_duplicates, outbox_row
from webapp.reminders.reach import channel_order, channels_for, contact_of, not_found_by_user
from webapp.reminders.sending import open_personal
from webapp.reminders.texts import sms_content, templates_by_kind
from webapp.zones import day_start


def sms_available() -> bool:
    return Channel.SMS in channel_order()


def send_code_now(row: LoginCode, code: str, *, language: str, now: datetime) -> None:
    """Send a sign-in code by SMS now; DeliveryError if SMS is off, the number's or the
    day's limit is reached, or the provider refuses."""
    config = current_app.config
    if not sms_available():
        raise DeliveryError("SMS is not set up", permanent=True)
    since = day_start(now, config["DEFAULT_TIMEZONE"])
    sent = sms_sent_today([row.user_id], since=since).get(row.user_id, 0) if row.user_id else 0
    if sent >= config["SMS_PER_NUMBER_PER_DAY"]:
        raise DeliveryError("this number's daily SMS limit is reached", permanent=True)
    channel = open_personal(Channel.SMS, config)
    try:
        content = sms_content("login_code", {"code": code}, language, templates_by_kind())
        receipt = channel.send(row.phone, content, key=f"code-{row.id}")
    finally:
        channel.close()
    row.sent = True
    row.cost = receipt.cost if receipt else 0
    db.session.flush()


def queue_login_links(
    users: list[User],
    *,
    now: datetime,
    series_id: int | None = None,
    only: Channel | None = None,
) -> tuple[list[User], list[User]]:
    """Queue a fresh log-in link for each person on their first channel (or only by
    `only`): (those it goes to, those no channel reaches). The link is made when sent and
    ends the person's older links."""
    order = channel_order()
    if only is not None:
        order = tuple(channel for channel in order if channel == only)
    not_found = not_found_by_user([user.id for user in users], now=now)
    rows, queued, unreachable = [], [], []
    for user in users:
        channels, _reason = channels_for(
            contact_of(user, not_found.get(user.id, frozenset())), order, DeliveryKind.LOGIN
        )
        if not channels:
            unreachable.append(user)
            continue
        queued.append(user)
        rows.append(
            outbox_row(
                f"l:{user.id}:{uuid.uuid4().hex}",
                DeliveryKind.LOGIN,
                channels[0],
                series_id=series_id,
                due_at=now,
                now=now,
                user_id=user.id,
                payload={"only": only.value} if only else {},
            )
        )
    _insert_ignoring_duplicates(rows)
    db.session.flush()
    return queued, unreachable
