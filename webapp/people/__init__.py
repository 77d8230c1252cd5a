"""People: user accounts, roles, units (the organisations participants belong to), speakers."""
