"""The admin area: users, roles and units."""
