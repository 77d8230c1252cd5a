"""Counting feed fetches: when a calendar last refreshed, for the subscriber's page and
the late-change rule."""

import logging
import os
import threading
import time
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from webapp.db import db
from webapp.feeds.models import FeedKind, FeedToken
from webapp.people.models import User
from webapp.series.models import (
    SeriesStatus,
    Visibility,
)

log = logging.getLogger(__name__)

# --- fetches ---------------------------------------------------------------------------------


class FetchCounter:
    """Counts feed fetches in memory; a thread of the web process writes them within
    FLUSH_AFTER of a fetch, whatever comes next (no later fetch is needed), in one go for
    every fetch of those seconds. The feed path itself never waits for a write: it takes a
    lock, updates a dict and sets an event. (Counts are kept per app, so that an app's
    counts go to its own database: a process holds one app, a test run many.)"""

    FLUSH_AFTER = timedelta(seconds=2)
    MAX_PENDING = 500  # written at once beyond this many tokens
    ATTEMPTS = 3  # a database away longer than this many rounds loses those counts

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[object, dict[int, tuple[int, datetime, str]]] = {}
        self.failures: dict[object, int] = {}
        self.due = threading.Event()
        self.flusher_pid: int | None = None

    def record(self, token_id: int, *, now: datetime, user_agent: str) -> bool:
        """Count one fetch (the flusher writes it soon); True when so many tokens wait that
        the caller should write them now."""
        app = current_app._get_current_object()
        with self.lock:
            counts = self.pending.setdefault(app, {})
            count, _last, _agent = counts.get(token_id, (0, now, ""))
            counts[token_id] = (count + 1, now, user_agent[:300])
            many = len(counts) >= self.MAX_PENDING
            if self.flusher_pid != os.getpid():  # one flusher per process, after a fork
                self.flusher_pid = os.getpid()
                threading.Thread(target=self._flush_soon, name="feed-fetches", daemon=True).start()
        self.due.set()
        return many

    def _flush_soon(self) -> None:
        while True:
            self.due.wait()
            time.sleep(self.FLUSH_AFTER.total_seconds())  # gather what else comes meanwhile
            self.due.clear()
            with self.lock:
                apps = list(self.pending)
            for app in apps:
                try:
                    with app.app_context():
                        self.flush()
                    self.failures.pop(app, None)
                except Exception:  # the database is away: the counts wait for the next round
                    log.exception("feed fetch counts could not be written")
                    self.failures[app] = self.failures.get(app, 0) + 1
                    if self.failures[app] >= self.ATTEMPTS:
                        with self.lock:
                            self.pending.pop(app, None)
                        self.failures.pop(app, None)
                    else:
                        self.due.set()

    def flush(self) -> int:
        """Write this app's counts now (the subscriber's page does, to show the latest)."""
        app = current_app._get_current_object()
        with self.lock:
            pending = self.pending.pop(app, {})
        try:
            for token_id, (count, last, agent) in pending.items():
                db.session.execute(
                    update(FeedToken)
                    .where(FeedToken.id == token_id)
                    .values(
                        fetch_count=FeedToken.fetch_count + count,
                        last_fetched_at=last,
                        last_user_agent=agent,
                    )
                    .execution_options(synchronize_session=False)
                )
            db.session.commit()
        except Exception:
            db.session.rollback()
            with self.lock:  # put them back, added to what came meanwhile
                counts = self.pending.setdefault(app, {})
                for token_id, (count, last, agent) in pending.items():
                    newer = counts.get(token_id)
                    counts[token_id] = (
                        (count + newer[0], newer[1], newer[2]) if newer else (count, last, agent)
                    )
            raise
        return len(pending)


fetch_counter = FetchCounter()


def tokens_of(user: User) -> list[FeedToken]:
    return list(
        db.session.scalars(
            select(FeedToken)
            .where(FeedToken.user_id == user.id, FeedToken.revoked_at.is_(None))
            .order_by(FeedToken.id)
        ).all()
    )


def public_series_feed_allowed(visibility: Visibility, status: SeriesStatus) -> bool:
    """Whether a series has a feed anyone may fetch without a link: public and published."""
    return visibility == Visibility.PUBLIC and status != SeriesStatus.DRAFT


def last_fetches(user_ids: list[int]) -> dict[int, datetime]:
    """When each user's personal feed was last fetched (for organizers)."""
    rows = db.session.execute(
        select(FeedToken.user_id, FeedToken.last_fetched_at).where(
            FeedToken.user_id.in_(user_ids or [-1]),
            FeedToken.kind == FeedKind.PERSONAL,
            FeedToken.last_fetched_at.is_not(None),
        )
    ).all()
    latest: dict[int, datetime] = {}
    for user_id, fetched in rows:
        if user_id not in latest or fetched > latest[user_id]:
            latest[user_id] = fetched
    return latest
