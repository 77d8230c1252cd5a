"""Adding a participant by hand: find their account by email or mobile number (or create
it), warn when their other series meet at the same time, then enrol them."""

from datetime import datetime

from flask_babel import gettext as _

from webapp.errors import (
    InvalidInput,
    NeedsConfirmation,
)
from webapp.people.models import Unit
from webapp.people.services import (
    create_user,
    find_user_by_identifier,
)
from webapp.series.enrollment import (
    enroll,
)
from webapp.series.models import Enrollment, Series
from webapp.sessions.conflicts import (
    participant_overlaps_for_user,
)


def add_participant(
    series: Series,
    *,
    identifier: str,
    display_name: str | None,
    unit: Unit | None,
    accept_warnings: bool,
    now: datetime,
) -> Enrollment:
    """Enrol the person with this email or mobile number; without an account, one is made
    when a name is given. Overlaps with their other series raise NeedsConfirmation unless
    accepted."""
    user = find_user_by_identifier(identifier)
    if user is None:
        identifier = identifier.strip()
        if not (display_name or "").strip():
            raise InvalidInput(
                _("No account has this email or mobile number; enter a name to create one."),
                field="display_name",
            )
        by_email = "@" in identifier
        user = create_user(
            display_name=display_name,
            email=identifier if by_email else None,
            phone=None if by_email else identifier,
            unit=unit,
        )
    if not accept_warnings:
        warnings = participant_overlaps_for_user(user, series)
        if warnings:
            raise NeedsConfirmation(warnings)
    return enroll(user, series, now=now)
