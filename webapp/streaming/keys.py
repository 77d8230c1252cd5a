"""The secrets of streaming, none of them stored: publish keys and the callbacks' secret
are HMACs of the app's SECRET_KEY, viewer tokens are signed. Every check is constant-time."""

import base64
import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from webapp.streaming.models import Stream

NAME_LENGTH = 16  # a stream's public name: 16 letters and digits (95 bits)
NAME_ALPHABET = string.ascii_letters + string.digits
SALT_BYTES = 16


def new_stream_name() -> str:
    """Letters and digits only: the HLS segment names nginx makes (`<name>-<n>.ts`) then
    parse one way only, here and in nginx's auth cache key."""
    return "".join(secrets.choice(NAME_ALPHABET) for _ in range(NAME_LENGTH))


def new_key_salt() -> str:
    return secrets.token_hex(SALT_BYTES)


def _mac(purpose: str, message: str) -> bytes:
    secret = current_app.config["SECRET_KEY"]
    if isinstance(secret, str):
        secret = secret.encode()
    return hmac.new(secret, f"{purpose}\0{message}".encode(), hashlib.sha256).digest()


def publish_key(stream: Stream) -> str:
    """The stream's publish key (shown to its organizers only): 32 characters, never stored;
    a new salt makes a new key and the old one stops working."""
    digest = _mac("publish-key", f"{stream.name}\0{stream.key_salt}")
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def key_matches(stream: Stream, key: str) -> bool:
    return hmac.compare_digest(publish_key(stream).encode(), key.encode())


def callback_secret() -> str:
    configured = current_app.config["RTMP_CALLBACK_SECRET"]
    if configured:
        return configured
    return base64.urlsafe_b64encode(_mac("rtmp-callbacks", "")).decode().rstrip("=")


def callback_secret_matches(given: str) -> bool:
    return hmac.compare_digest(callback_secret().encode(), given.encode())


def key_window(starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    """When a session's publish key works: STREAM_KEY_OPENS_MINUTES before the start until
    STREAM_KEY_CLOSES_MINUTES after the end."""
    config = current_app.config
    return (
        starts_at - timedelta(minutes=config["STREAM_KEY_OPENS_MINUTES"]),
        ends_at + timedelta(minutes=config["STREAM_KEY_CLOSES_MINUTES"]),
    )


# --- viewer tokens ----------------------------------------------------------------------
# A signed (user, session, purpose) ticket: the player's heartbeats and an RTMP viewer's
# play URL carry it, so neither needs a cookie or a database read to know who is watching.

VIEWER_TOKEN_MAX_AGE = 24 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="viewer-token")


def viewer_token(user_id: int, session_id: int, *, replay: bool = False) -> str:
    return _serializer().dumps([user_id, session_id, 1 if replay else 0])


def read_viewer_token(token: str) -> tuple[int, int, bool] | None:
    """(user id, session id, replay) for a valid token; None for anything else."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        value = _serializer().loads(token, max_age=VIEWER_TOKEN_MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(part, int) and not isinstance(part, bool) for part in value)
    ):
        return None
    return value[0], value[1], bool(value[2])
