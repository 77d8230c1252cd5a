"""Group viewing: a room screen shows a check-in code (and its QR code) that changes every
minute; participants in the room check in with their phone while it is valid. The code is
an HMAC of the session and the minute: nothing is stored, and it cannot be guessed from
earlier codes. A check-in counts for the time the broadcast was live (rules.py)."""

import hashlib
import hmac
from datetime import datetime

from flask import current_app

from webapp.db import db
from webapp.sessions.models import AttendanceEvent, AttendanceKind, AttendanceSource

CODE_DIGITS = 6
VALID_MINUTES = 2  # this minute's code and the one before (time to type it)


def _minute(now: datetime) -> int:
    return int(now.timestamp() // 60)


def code_for(session_id: int, minute: int) -> str:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(secret, f"check-in\0{session_id}\0{minute}".encode(), hashlib.sha256)
    return str(int.from_bytes(digest.digest()[:8], "big") % 10**CODE_DIGITS).zfill(CODE_DIGITS)


def current_code(session_id: int, *, now: datetime) -> str:
    return code_for(session_id, _minute(now))


def code_is_valid(session_id: int, code: str, *, now: datetime) -> bool:
    code = "".join(ch for ch in code if ch.isdigit())[:CODE_DIGITS]
    minute = _minute(now)
    return any(
        hmac.compare_digest(code_for(session_id, minute - back), code)
        for back in range(VALID_MINUTES)
    )


def check_in(session_id: int, user_id: int, *, now: datetime) -> None:
    db.session.add(
        AttendanceEvent(
            session_id=session_id,
            user_id=user_id,
            source=AttendanceSource.CHECK_IN,
            kind=AttendanceKind.JOIN,
            at=now,
        )
    )
    db.session.flush()
