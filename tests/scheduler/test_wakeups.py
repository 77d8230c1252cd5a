"""Workers wake on a change instead of waiting for their next poll: on PostgreSQL the change's
own transaction sends a NOTIFY (delivered at its commit, never for a rollback), and the
worker's listener runs the job it names at once. SQLite has no NOTIFY: the polls stay."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from scheduler.jobs import Job, publish_feeds
from scheduler.runner import build_scheduler
from scheduler.wakeups import jobs_to_run, start_listening
from tests.conftest import backend_name
from webapp.db import db, utcnow
from webapp.feeds.models import FeedDocument
from webapp.feeds.serving import current_document
from webapp.people.models import Role
from webapp.reminders.models import ReminderRule
from webapp.sessions.services import reschedule_session
from webapp.wakeups import listen, postgresql_dsn


@pytest.fixture
def course(app, make_user, make_series):
    cadre = make_user(email="cadre@example.org")
    series = make_series(participants=[cadre], organizers=[make_user(Role.ORGANIZER)],
                         sessions=2, first_start=utcnow() + timedelta(days=3))  # fmt: skip
    current_document(f"user:{cadre.id}", now=utcnow())  # a stored feed, fresh
    db.session.commit()
    return series, cadre


def move(series, hours=1):
    session = series.sessions[0]
    reschedule_session(session, starts_at=session.starts_at + timedelta(hours=hours),
                       ends_at=session.ends_at + timedelta(hours=hours), by=None, now=utcnow(),
                       accept_warnings=True)  # fmt: skip


def hearing(app):
    """A listener in a thread; the job ids it was told to run, in order."""
    heard, stop = [], threading.Event()
    thread = threading.Thread(
        target=listen,
        args=(app.config["SQLALCHEMY_DATABASE_URI"], jobs_to_run(heard.append), stop),
        daemon=True,
    )
    thread.start()
    time.sleep(0.5)  # LISTEN is in place
    return heard, stop, thread


def wait_for(condition, seconds=5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "not within the time"
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.postgresql_only
def test_a_committed_change_wakes_the_feed_publisher_and_a_rolled_back_one_does_not(app, course):
    series, _cadre = course
    heard, stop, thread = hearing(app)
    try:
        move(series)
        db.session.rollback()
        time.sleep(0.5)
        assert heard == []  # a change that never happened wakes nobody
        move(series)
        db.session.commit()
        wait_for(lambda: heard == ["publish-feeds"], seconds=1.0)
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.mark.postgresql_only
def test_a_session_moved_to_the_next_quarter_hour_wakes_planning_and_dispatch(app, course):
    series, _cadre = course
    heard, stop, thread = hearing(app)
    try:
        db.session.add(ReminderRule(series_id=series.id, minutes_before=15))
        db.session.commit()
        time.sleep(0.2)
        assert heard == []
        session = series.sessions[0]
        soon = utcnow() + timedelta(minutes=10)  # its quarter-hour reminder is due already
        reschedule_session(session, starts_at=soon, ends_at=soon + timedelta(hours=2), by=None,
                           now=utcnow(), accept_warnings=True)  # fmt: skip
        db.session.commit()
        wait_for(lambda: "plan-reminders" in heard, seconds=1.0)
        from webapp.reminders.planning import plan_reminders

        assert plan_reminders(now=utcnow()) == 1  # what the woken job does
        db.session.commit()
        wait_for(lambda: "dispatch" in heard, seconds=1.0)
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.mark.postgresql_only
def test_the_worker_publishes_a_change_at_once_though_its_poll_is_a_minute(app, course):
    """The real scheduler with the publishing job on a one-minute interval: the change is in
    the feed within a second of its commit, because the worker was woken."""
    series, cadre = course
    scheduler = build_scheduler(app, jobs=(Job("publish-feeds", publish_feeds, 60),))
    runner = threading.Thread(target=scheduler.start, daemon=True)
    runner.start()
    stop = threading.Event()
    start_listening(app.config["SQLALCHEMY_DATABASE_URI"], scheduler, stop)
    try:
        time.sleep(1.0)  # started, its first run (at start) done, LISTEN in place
        move(series)
        db.session.commit()

        def published():
            db.session.expire_all()
            document = db.session.get(FeedDocument, f"user:{cadre.id}")
            return document.stale_since is None and b"DTSTART" in document.body

        assert db.session.get(FeedDocument, f"user:{cadre.id}").stale_since is not None
        assert wait_for(published, seconds=2.0) < 2.0
        body = db.session.scalar(
            select(FeedDocument.body).where(FeedDocument.feed_key == f"user:{cadre.id}")
        )
        moved = series.sessions[0].starts_at.astimezone(UTC)
        assert moved.strftime("%Y%m%dT%H%M%S").encode() in body or b"SEQUENCE:1" in body
    finally:
        stop.set()
        scheduler.shutdown(wait=False)


def test_sqlite_has_nothing_to_listen_to():
    assert postgresql_dsn("sqlite:////tmp/x.sqlite3") is None
    assert postgresql_dsn("postgresql+psycopg://u:p@127.0.0.1:5432/db?sslmode=disable") == (
        "postgresql://u:p@127.0.0.1:5432/db?sslmode=disable"
    )
    started = datetime.now(UTC)
    listen("sqlite:////tmp/x.sqlite3", lambda heard: None, threading.Event())  # returns at once
    assert datetime.now(UTC) - started < timedelta(seconds=1)
    assert backend_name() in ("sqlite", "postgresql")


@pytest.mark.postgresql_only
def test_a_web_process_remembers_validators_until_told_a_link_or_feed_changed(app, course, client):
    """While a web process hears notifications, a feed poll costs no query; a link revoked
    by another process is refused as soon as that commit is heard (and not before)."""
    from sqlalchemy import update

    from tests.helpers import QueryCounter
    from webapp.feeds.links import link_token, token_for
    from webapp.feeds.memory import lookup_cache
    from webapp.feeds.models import FeedKind, FeedToken
    from webapp.wakeups import Wake, wake

    _series, cadre = course
    url = f"/feeds/{link_token(token_for(cadre, FeedKind.PERSONAL, now=utcnow()))}.ics"
    db.session.commit()
    first = client.get(url)
    assert first.status_code == 200
    wait_for(lambda: lookup_cache.listening, seconds=3.0)
    etag = client.get(url).headers["ETag"]
    with QueryCounter(db.engine) as counter:
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert counter.count == 0  # validators from memory
    # Another process revokes the link: first without telling anyone (this process still
    # serves the link it remembers), then with its notification.
    db.session.execute(update(FeedToken).values(revoked_at=utcnow()))
    db.session.commit()
    time.sleep(1.5)
    assert client.get(url).status_code == 200
    wake(Wake.TOKENS)
    db.session.commit()
    wait_for(lambda: client.get(url).status_code == 404, seconds=1.0)
