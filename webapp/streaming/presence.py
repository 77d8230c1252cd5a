"""Presence checks: when a series turns them on, the player asks "还在听课吗？" at a few
moments of a live session. The moments are the same every time the page is opened (an HMAC
of the session and the participant seeds them) and differ between participants, so a
room cannot answer for each other by the clock."""

import hashlib
import hmac
import random
from datetime import datetime, timedelta

from flask import current_app


def check_moments(session, user_id: int) -> list[datetime]:
    """The series' number of checks, spread over the middle 80 % of the session."""
    count = session.series.presence_checks
    if not count:
        return []
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    seed = hmac.new(secret, f"presence\0{session.id}\0{user_id}".encode(), hashlib.sha256)
    chooser = random.Random(seed.digest())  # noqa: S311 (spread, not a secret)
    length = (session.ends_at - session.starts_at).total_seconds()
    return sorted(
        session.starts_at + timedelta(seconds=length * (0.1 + 0.8 * chooser.random()))
        for _ in range(count)
    )
