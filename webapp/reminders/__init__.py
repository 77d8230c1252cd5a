"""Reminders and notifications: rules, the delivery outbox, channels and the sweeps the
worker runs (plan → compose → dispatch)."""
