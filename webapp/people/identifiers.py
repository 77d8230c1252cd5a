"""Email addresses and mobile numbers in their one canonical form (E.164 for phones)."""

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _

from webapp.errors import InvalidInput

DEFAULT_PHONE_REGION = "CN"


def normalise_email(raw: str) -> str:
    """Return the canonical form of an email address or raise InvalidInput."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(
            _("“%(value)s” is not a valid email address.", value=raw), field="email"
        ) from error
    return result.normalized.lower()


def normalise_phone(raw: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """Return a mobile number in E.164 form (+8613800138000) or raise InvalidInput."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException as error:
        raise InvalidInput(
            _("“%(value)s” is not a valid phone number.", value=raw), field="phone"
        ) from error
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(_("“%(value)s” is not a valid phone number.", value=raw), field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
