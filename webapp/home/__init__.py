"""The home page: what matters to the user who opens it."""
