"""Shared by the streaming tests: a self-hosted session starting soon, and nginx-rtmp's
callback bodies as nginx writes them."""

from datetime import timedelta
from urllib.parse import urlencode

from webapp.db import db, utcnow
from webapp.sessions.models import StreamMode
from webapp.streaming.broadcasts import stream_of
from webapp.streaming.keys import callback_secret, publish_key


def hosted_session(make_series, make_user, *, starts_in=timedelta(minutes=10), **series_args):
    """A published series whose first session is self-hosted and starts soon (real clock:
    nginx and the callbacks live in the present)."""
    series = make_series(first_start=utcnow() + starts_in, **series_args)
    session = series.sessions[0]
    session.stream_mode = StreamMode.HOSTED
    stream = stream_of(session)
    db.session.commit()
    return session, stream, publish_key(stream)


def nginx_body(call: str, name: str, *, clientid: str = "7", args: str = "", **fields) -> str:
    """A callback body as ngx_rtmp_notify_module writes it: the session's own fields, then
    the call's, then the client's query string appended raw (not escaped)."""
    body = {
        "app": "live",
        "flashver": "FMLE/3.0",
        "swfurl": "",
        "tcurl": "rtmp://127.0.0.1/live",
        "pageurl": "",
        "addr": "127.0.0.1",
        "clientid": clientid,
        "call": call,
        "name": name,
        "type": "live",
        **fields,
    }
    text = urlencode(body)
    return f"{text}&{args}" if args else text


def callback(client, call, name, *, secret=None, **kwargs):
    return client.post(
        f"/streaming/rtmp?secret={secret if secret is not None else callback_secret()}",
        data=nginx_body(call, name, **kwargs),
        content_type="application/x-www-form-urlencoded",
    )
