"""String enums stored as checked VARCHARs, so every backend refuses unknown values."""

from enum import StrEnum

import sqlalchemy as sa


def checked_enum(enum_class: type[StrEnum], name: str) -> sa.Enum:
    """Return a portable column type for enum_class with a named CHECK constraint."""
    return sa.Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(member.value) for member in enum_class),
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
