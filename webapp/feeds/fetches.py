"""Counting feed fetches: when a calendar last refreshed, for the subscriber's page and
the late-change rule."""

import threading
from datetime import datetime, timedelta

from sqlalchemy import select, update

from webapp.db import db, utcnow
from webapp.feeds.models import FeedKind, FeedToken
from webapp.people.models import User
from webapp.series.models import (
    Series,
    SeriesStatus,
    Visibility,
)

# --- fetches ---------------------------------------------------------------------------------


class FetchCounter:
    """Counts feed fetches in memory and writes them in one go every few seconds (after a
    response has gone out), so the feed path never waits for a write."""

    FLUSH_EVERY = timedelta(seconds=10)

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[int, datetime, str]] = {}
        self.last_flush: datetime | None = None

    def record(self, token_id: int, *, now: datetime, user_agent: str) -> bool:
        """Count one fetch; True when it is time to write the counts."""
        with self.lock:
            count, _last, _agent = self.pending.get(token_id, (0, now, ""))
            self.pending[token_id] = (count + 1, now, user_agent[:300])
            if self.last_flush is None:
                self.last_flush = now
            return now - self.last_flush >= self.FLUSH_EVERY or len(self.pending) >= 500

    def flush(self, *, now: datetime | None = None) -> int:
        with self.lock:
            pending, self.pending = self.pending, {}
            self.last_flush = now or utcnow()
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


def public_series_feed_allowed(series: Series) -> bool:
    return series.visibility == Visibility.PUBLIC and series.status != SeriesStatus.DRAFT


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
