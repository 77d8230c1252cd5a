"""Stored feed documents: storing, publishing the stale ones (the worker's sweep),
recording and retrying failures; one bad feed fails alone."""

import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from webapp.db import db
from webapp.errors import DomainError
from webapp.feeds.builder import (
    etag_for,
)
from webapp.feeds.content import _assemble_rows, _complete_alone, _rows_in, render_feed, user_header
from webapp.feeds.memory import lookup_cache
from webapp.feeds.models import FeedDocument
from webapp.people.models import User
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
)
from webapp.wakeups import Wake, wake

log = logging.getLogger(__name__)


class FeedUnavailable(DomainError):
    status_code = 503


STALE_GRACE = timedelta(seconds=5)  # after this a request renders a stale feed itself
MAX_AGE = timedelta(days=1)  # re-render daily, so cancelled sessions age out

# --- stored documents ------------------------------------------------------------------------


def store_feed(key: str, *, now: datetime, seen_stale: datetime | None = None) -> FeedDocument:
    """Render a feed and keep it; the ETag and Last-Modified change only with the content."""
    lookup_cache.clear()  # this process sees the new version at once; others within 1 s
    body = render_feed(key, now=now)
    document = db.session.get(FeedDocument, key)
    etag = etag_for(body)
    if document is None:
        document = FeedDocument(
            feed_key=key, body=body, etag=etag, last_modified=now, rendered_at=now, stale_since=None
        )
        db.session.add(document)
    else:
        if document.etag != etag:
            document.body, document.etag, document.last_modified = body, etag, now
            wake(Wake.PUBLISHED)  # web processes forget the old validators at the commit
        document.rendered_at = now
        if document.stale_since == seen_stale:
            document.stale_since = None  # a change that came in meanwhile keeps it stale
    document.failed_at = document.publish_error = None
    db.session.flush()
    return document


def _store_alone(key: str, *, now: datetime, seen_stale: datetime | None) -> bool:
    """Render one feed in a savepoint: a feed whose content makes rendering fail is marked
    failed (its last good version stays served) and does not stop the others."""
    try:
        with db.session.begin_nested():
            store_feed(key, now=now, seen_stale=seen_stale)
    except SQLAlchemyError:
        raise
    except Exception as error:
        mark_failed([key], error, now=now)
        return False
    return True


def mark_failed(keys: list[str], error: Exception, *, now: datetime) -> None:
    """Record that these feeds could not be rendered; they are no longer picked up as stale
    (so the sweep does not spin on them) until an admin retries them."""
    log.exception("feed %s could not be rendered", ", ".join(keys))
    db.session.execute(
        update(FeedDocument)
        .where(FeedDocument.feed_key.in_(keys))
        .values(
            stale_since=None, failed_at=now, publish_error=f"{type(error).__name__}: {error}"[:2000]
        )
        .execution_options(synchronize_session=False)
    )


def failed_feeds(limit: int = 50) -> list[FeedDocument]:
    """Feeds whose last render failed, newest first (for /admin/status)."""
    return list(
        db.session.scalars(
            select(FeedDocument)
            .where(FeedDocument.failed_at.is_not(None))
            .order_by(FeedDocument.failed_at.desc())
            .limit(limit)
        )
    )


def waiting_feeds() -> tuple[int, datetime | None]:
    """How many stored feeds wait to be published again, and since when the oldest."""
    count, oldest = db.session.execute(
        select(func.count(), func.min(FeedDocument.stale_since)).where(
            FeedDocument.stale_since.is_not(None)
        )
    ).one()
    return int(count or 0), oldest


def retry_failed_feeds(*, now: datetime) -> int:
    """Mark every failed feed stale again, so the worker tries it once more."""
    result = db.session.execute(
        update(FeedDocument)
        .where(FeedDocument.failed_at.is_not(None))
        .values(stale_since=now, failed_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def publish_stale_feeds(*, now: datetime, limit: int = 200) -> int:
    """The worker's sweep: render the feeds something changed in (claimed, so that several
    workers share them)."""
    rows = db.session.execute(
        select(FeedDocument.feed_key, FeedDocument.stale_since)
        .where(FeedDocument.stale_since.is_not(None))
        .order_by(FeedDocument.stale_since)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        lookup_cache.clear()
    personal = {int(key[5:]): stale for key, stale in rows if key.startswith("user:")}
    for key, stale_since in rows:
        if not key.startswith("user:"):
            _store_alone(key, now=now, seen_stale=stale_since)
    if personal:
        _publish_personal(personal, now=now)
    db.session.flush()
    return len(rows)


def _publish_personal(stale: dict[int, datetime], *, now: datetime) -> None:
    """Re-render many personal feeds at once: participants of the same series share one
    query for their events; each feed differs only in its header (name, zone, alarm)."""
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(stale)))}
    series_of: dict[int, set[int]] = {uid: set() for uid in stale}
    for user_id, series_id in db.session.execute(
        select(Enrollment.user_id, Enrollment.series_id).where(
            Enrollment.user_id.in_(stale), Enrollment.status == EnrollmentStatus.ENROLLED
        )
    ):
        series_of[user_id].add(series_id)
    documents = {
        d.feed_key: d
        for d in db.session.scalars(
            select(FeedDocument).where(FeedDocument.feed_key.in_([f"user:{u}" for u in stale]))
        )
    }
    rows_cache: dict[frozenset, list[tuple] | Exception] = {}
    params = []
    for user_id, seen in stale.items():
        user = users.get(user_id)
        document = documents.get(f"user:{user_id}")
        if user is None or document is None:
            continue
        group = frozenset(series_of[user_id])
        try:
            if group not in rows_cache:
                rows_cache[group] = _complete_alone(_rows_in(sorted(group) or [-1], now=now))
            if isinstance(rows_cache[group], Exception):
                raise rows_cache[group]
            body = _assemble_rows(user_header(user), rows_cache[group], user.feed_alarm_minutes)
        except SQLAlchemyError:
            raise
        except Exception as error:
            mark_failed([document.feed_key], error, now=now)
            continue
        etag = etag_for(body)
        changed = etag != document.etag
        params.append(
            {
                "k": document.feed_key,
                "b": body if changed else document.body,
                "e": etag,
                "m": now if changed else document.last_modified,
                "r": now,
                "seen": seen,
            }
        )
    if not params:
        return
    if any(row["b"] is not documents[row["k"]].body for row in params):
        wake(Wake.PUBLISHED)
    table = FeedDocument.__table__
    statement = (
        update(table)
        .where(table.c.feed_key == bindparam("k"))
        .values(
            body=bindparam("b"),
            etag=bindparam("e"),
            last_modified=bindparam("m"),
            rendered_at=bindparam("r"),
            # A change that came in while rendering leaves the feed stale for the next sweep.
            stale_since=case(
                (table.c.stale_since == bindparam("seen"), None), else_=table.c.stale_since
            ),
            failed_at=None,
            publish_error=None,
        )
    )
    db.session.execute(statement, params)
