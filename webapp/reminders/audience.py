"""Who gets a message by mail. Decided here and nowhere else: the planner, the notice
composer and the sending step all ask the same rule, so a message the composer decided to
send (a late change to someone who turned mail off) is not dropped by the sender."""

from webapp.reminders.models import DeliveryKind


def wants_mail(
    kind: DeliveryKind,
    *,
    is_active: bool | None,
    email: str | None,
    email_reminders: bool | None,
    late_change: bool = False,
) -> bool:
    """Whether a person gets this kind of message by mail.

    Everyone active with an address gets what they asked for (reminders and notices, unless
    they turned mail off). A session moved or cancelled less than a day before it starts is
    mailed even to those who turned mail off when their subscribed calendar has not fetched
    since (`late_change`, decided by the composer): their calendar may show the old time."""
    if not (is_active and email):
        return False
    if kind == DeliveryKind.NOTICE and late_change:
        return True
    return bool(email_reminders)
