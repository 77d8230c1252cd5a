"""Outgoing webhooks: an admin points another system (a records system, a district's OA, a
data screen) at an address and chooses the events it gets. Each event becomes one outbox row
per webhook, in the transaction of the change; the worker sends it, signed, with the
outbox's retries and backoff; failures are visible and can be sent again by hand.

What the receiver gets: a POST with the event as JSON,

    {"id": "…", "type": "session.rescheduled", "created_at": "2026-12-03T08:00:00+00:00",
     "data": {…}}

and the headers X-Yunketang-Event, X-Yunketang-Delivery, X-Yunketang-Timestamp (Unix
seconds) and X-Yunketang-Signature: "sha256=" and the hex HMAC-SHA256, keyed with the
webhook's secret, of the timestamp, a full stop and the body (docs/webhooks.md has the
verification snippet)."""

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from webapp import audit
from webapp.db import db
from webapp.errors import InvalidInput
from webapp.outgoing import ForbiddenAddress, check_url
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Webhook,
    WebhookKind,
)
from webapp.text import clean_line
from webapp.wakeups import Wake, wake

EVENT_TYPES = {
    "session.created": _l("a session is added"),
    "session.rescheduled": _l("a session is moved"),
    "session.cancelled": _l("a session is cancelled"),
    "session.live": _l("a session goes live"),
    "session.ended": _l("a live session ends"),
    "enrollment.changed": _l("someone is enrolled, waitlisted or leaves"),
    "attendance.finalized": _l("a session's attendance is final"),
}


def _clean(name: str, url: str, events: list[str]) -> tuple[str, str, str]:
    name, url = clean_line(name) or "", clean_line(url) or ""
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    try:
        check_url(url)  # the robots' rules: https, and never an address inside
    except ForbiddenAddress as error:
        raise InvalidInput(str(error), field="url") from error
    chosen = [event for event in EVENT_TYPES if event in events]
    if not chosen:
        raise InvalidInput(_("Choose at least one event."), field="events")
    return name, url, ",".join(chosen)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def event_hooks() -> list[Webhook]:
    return list(
        db.session.scalars(
            select(Webhook).where(Webhook.kind == WebhookKind.EVENTS).order_by(Webhook.id)
        )
    )


def create_hook(name: str, url: str, events: list[str], *, now: datetime) -> Webhook:
    """A new webhook with a random signing secret (shown to the admin once)."""
    name, url, chosen = _clean(name, url, events)
    hook = Webhook(
        name=name, kind=WebhookKind.EVENTS, url=url, secret=new_secret(), events=chosen,
        created_at=now,
    )  # fmt: skip
    db.session.add(hook)
    db.session.flush()
    _record("webhook.created", hook, {"url": url, "events": chosen}, now)
    return hook


def update_hook(
    hook: Webhook, name: str, url: str, events: list[str], active: bool, *, now: datetime
) -> None:
    """Change a webhook's name, address, events, or pause it (nothing is queued for it while
    paused; what was queued is dropped when its turn comes)."""
    name, url, chosen = _clean(name, url, events)
    old = {"name": hook.name, "url": hook.url, "events": hook.events, "active": hook.is_active}
    new = {"name": name, "url": url, "events": chosen, "active": active}
    if old == new:
        return
    hook.name, hook.url, hook.events, hook.is_active = name, url, chosen, active
    changes = {key: [old[key], new[key]] for key in old if old[key] != new[key]}
    _record("webhook.changed", hook, changes, now)
    db.session.flush()


def rotate_secret(hook: Webhook, *, now: datetime) -> str:
    """A new signing secret; what is sent from now on is signed with it."""
    hook.secret = new_secret()
    _record("webhook.secret_rotated", hook, {}, now)
    db.session.flush()
    return hook.secret


def remove_hook(hook: Webhook, *, now: datetime) -> None:
    """Remove a webhook; its deliveries not yet sent go with it."""
    _record("webhook.removed", hook, {"url": hook.url}, now)
    db.session.delete(hook)
    db.session.flush()


def _record(action: str, hook: Webhook, details: dict, now: datetime) -> None:
    audit.record(
        action, object_type="webhook", object_id=hook.id, label=hook.name, details=details,
        now=now,
    )  # fmt: skip


def announce(
    event_type: str,
    data: Callable[[], dict],
    *,
    now: datetime,
    series_id: int | None = None,
    session_id: int | None = None,
) -> int:
    """Queue the event for every active webhook that wants it (in the caller's
    transaction); returns how many deliveries were queued. `data` is only worked out when
    some webhook wants the event."""
    hooks = [
        hook
        for hook in db.session.scalars(
            select(Webhook).where(Webhook.kind == WebhookKind.EVENTS, Webhook.is_active.is_(True))
        )
        if event_type in (hook.events or "").split(",")
    ]
    if not hooks:
        return 0
    event = {
        "id": uuid.uuid4().hex,
        "type": event_type,
        "created_at": now.isoformat(),
        "data": data(),
    }
    for hook in hooks:
        db.session.add(
            Delivery(
                key=f"event:{event['id']}:{hook.id}",
                kind=DeliveryKind.EVENT,
                channel=Channel.WEBHOOK,
                webhook_id=hook.id,
                series_id=series_id,
                session_id=session_id,
                payload={"event": event},
                due_at=now,
            )
        )
    db.session.flush()
    wake(Wake.DISPATCH)
    return len(hooks)


def recent_deliveries(hook: Webhook, limit: int = 50) -> list[Delivery]:
    return list(
        db.session.scalars(
            select(Delivery)
            .where(Delivery.webhook_id == hook.id, Delivery.kind == DeliveryKind.EVENT)
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
    )


def redeliver(delivery: Delivery, *, now: datetime) -> Delivery:
    """Send an event again, by hand: the same event (same id, so the receiver can tell it
    has it), as a new delivery."""
    tries = db.session.scalar(
        select(func.count()).where(Delivery.key.like(f"{delivery.key}:again:%"))
    )
    again = Delivery(
        key=f"{delivery.key}:again:{tries + 1}",
        kind=DeliveryKind.EVENT,
        channel=Channel.WEBHOOK,
        webhook_id=delivery.webhook_id,
        series_id=delivery.series_id,
        session_id=delivery.session_id,
        payload=delivery.payload,
        due_at=now,
        status=DeliveryStatus.PENDING,
    )
    db.session.add(again)
    db.session.flush()
    wake(Wake.DISPATCH)
    return again
