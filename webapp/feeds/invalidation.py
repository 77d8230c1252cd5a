"""Keeping a web process's feed validators true: on PostgreSQL each web process listens on
the app's channel (webapp/wakeups.py) and forgets every remembered lookup when it hears that
feeds were marked stale or published anew, or that a link was revoked, rotated or its owner
deactivated. While it listens, a lookup is remembered for minutes and a poll costs no query;
without a listener (SQLite, a lost connection) only for FEED_LOOKUP_CACHE_SECONDS."""

import os
import threading

from flask import Flask

from webapp.feeds.memory import lookup_cache
from webapp.wakeups import Wake, listen

FORGET_ON = {Wake.FEEDS.value, Wake.PUBLISHED.value, Wake.TOKENS.value}

_started_in: int | None = None
_lock = threading.Lock()


def ensure_listening(app: Flask) -> None:
    """Start this process's listener once (after a server's fork: per process)."""
    global _started_in
    if _started_in == os.getpid() or not app.config["FEED_VALIDATORS_BY_NOTIFY"]:
        return
    with _lock:
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()
        thread = threading.Thread(
            target=listen,
            args=(app.config["SQLALCHEMY_DATABASE_URI"], _heard, threading.Event()),
            kwargs={"on_ready": _ready, "on_lost": _lost},
            name="feed-validators",
            daemon=True,
        )
        thread.start()


def _heard(payloads: set[str]) -> None:
    if payloads & FORGET_ON:
        lookup_cache.clear()


def _ready() -> None:
    lookup_cache.clear()  # what was remembered before listening may be out of date
    lookup_cache.listening = True


def _lost() -> None:
    lookup_cache.listening = False
    lookup_cache.clear()
