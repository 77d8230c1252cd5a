"""Reminder rules of a series (how long before each session) and its group robots."""

from flask_babel import gettext as _
from sqlalchemy import select, update

from webapp import settings
from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
    PermissionDenied,
)
from webapp.outgoing import ForbiddenAddress, check_url
from webapp.people.models import Unit, User
from webapp.people.units import (
    is_liaison_for,
)
from webapp.reminders.models import (
    Delivery,
    DeliveryStatus,
    ReminderRule,
    Webhook,
    WebhookKind,
)
from webapp.reminders.planning import webhooks_for_series
from webapp.reminders.services import (
    MAX_RULE_MINUTES,
)
from webapp.series.models import (
    Series,
)
from webapp.text import clean_line

# --- rules ---------------------------------------------------------------------------------


def rules_for(series: Series) -> list[ReminderRule]:
    return list(
        db.session.scalars(
            select(ReminderRule)
            .where(ReminderRule.series_id == series.id)
            .order_by(ReminderRule.minutes_before.desc())
        ).all()
    )


def add_default_rules(series: Series) -> None:
    """Give a new series the default reminders (the admin's setting; else a day and a quarter
    of an hour before)."""
    for minutes in settings.reminder_minutes():
        db.session.add(ReminderRule(series_id=series.id, minutes_before=minutes))
    db.session.flush()


def add_rule(series: Series, minutes_before: int) -> ReminderRule:
    """Remind participants of every session this many minutes before it starts."""
    if not 1 <= minutes_before <= MAX_RULE_MINUTES:
        raise InvalidInput(
            _("A reminder can be sent between 1 minute and 30 days before a session."),
            field="amount",
        )
    if any(rule.minutes_before == minutes_before for rule in rules_for(series)):
        raise Conflict(_("This series already has that reminder."), field="amount")
    rule = ReminderRule(series_id=series.id, minutes_before=minutes_before)
    db.session.add(rule)
    db.session.flush()
    return rule


def delete_rule(rule: ReminderRule) -> None:
    """Stop a reminder; its rows not yet sent are dropped."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.rule_id == rule.id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, last_error="reminder rule removed")
    )
    db.session.delete(rule)
    db.session.flush()


def add_webhook(
    *,
    name: str,
    kind: WebhookKind,
    url: str,
    secret: str | None,
    by: User,
    series: Series | None = None,
    unit: Unit | None = None,
    mentions_absent: bool = False,
) -> Webhook:
    """Connect a group robot or HTTP endpoint to a series or to a unit (a unit robot only
    by an admin or the unit's liaison)."""
    if unit is not None and not may_attach_unit_robot(by, unit):
        raise PermissionDenied(
            _("Only an administrator or the unit's liaison can connect a robot to a unit."),
            field="scope",
        )
    name, url = clean_line(name), clean_line(url)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    try:
        check_url(url)
    except ForbiddenAddress as error:
        raise InvalidInput(str(error), field="url") from error
    webhook = Webhook(
        name=name,
        kind=kind,
        url=url,
        secret=(secret or "").strip() or None,
        series_id=series.id if series else None,
        unit_id=unit.id if unit else None,
        mentions_absent=mentions_absent and unit is not None,
    )
    db.session.add(webhook)
    db.session.flush()
    return webhook


def webhooks_for_series_page(series: Series) -> list[Webhook]:
    """What the series' organizers see and may remove."""
    return webhooks_for_series(series.id)


def may_attach_unit_robot(user: User, unit: Unit | None) -> bool:
    """A unit robot receives every series' digest for its unit, with join links: only an
    admin or the unit's liaison connects (or removes) one."""
    return unit is not None and (user.is_admin or is_liaison_for(user, unit))


def remove_webhook(webhook: Webhook) -> None:
    """Disconnect a robot; its messages not yet sent are dropped with it."""
    db.session.delete(webhook)
    db.session.flush()
