"""Notices: composing what participants must be told (moves, cancellations, agenda
changes, enrollment) into outbox rows, including the late-change mail."""

from collections import defaultdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from webapp import events
from webapp.db import db
from webapp.feeds.models import FeedKind, FeedToken
from webapp.people.models import User
from webapp.reminders.models import (
    Channel,
    DeliveryKind,
    Notification,
    NotificationStatus,
)
from webapp.reminders.planning import _insert_ignoring_duplicates, outbox_row
from webapp.reminders.reach import channel_order, channels_for, contact_of, not_found_by_user
from webapp.sessions.models import LectureSession
from webapp.wakeups import Wake, wake

# --- notices (changes, enrollment) ---------------------------------------------------------


def compose_notices(*, now: datetime, window: timedelta | None = None) -> int:
    """Turn pending notifications into one message per participant and session, once no
    change has come for `window`: three quick edits make one message, not three."""
    window = window or timedelta(seconds=current_app.config["NOTICE_COALESCE_SECONDS"])
    pending = db.session.scalars(
        select(Notification)
        .where(Notification.status == NotificationStatus.PENDING)
        .order_by(Notification.id)
    ).all()
    groups: dict[tuple[int, int, int | None], list[Notification]] = defaultdict(list)
    for notification in pending:
        groups[(notification.user_id, notification.series_id, notification.session_id)].append(
            notification
        )
    users = {
        user.id: user
        for user in db.session.scalars(
            select(User).where(User.id.in_({key[0] for key in groups} or {-1}))
        )
    }
    # Subscribed calendars of those who turned mail off, in one query: user → last fetch.
    calendars = dict(
        db.session.execute(
            select(FeedToken.user_id, FeedToken.last_fetched_at).where(
                FeedToken.user_id.in_(
                    [u.id for u in users.values() if not u.email_reminders] or [-1]
                ),
                FeedToken.kind == FeedKind.PERSONAL,
                FeedToken.revoked_at.is_(None),
            )
        ).all()
    )
    rows = []
    told: dict[tuple[int, int], int] = {}  # (session, series) → the latest change told of
    order = channel_order()
    not_found = not_found_by_user(list(users), now=now)
    for (user_id, series_id, session_id), notifications in groups.items():
        if max(n.created_at for n in notifications) > now - window:
            continue  # more changes may follow; wait until they settle
        user = users[user_id]
        late_change = not user.email_reminders and _calendar_missed_late_change(
            user, notifications, calendars
        )
        channels, reason = channels_for(
            contact_of(user, not_found.get(user_id, frozenset())),
            order,
            DeliveryKind.NOTICE,
            late_change=late_change,
        )
        for notification in notifications:
            notification.status = (
                NotificationStatus.SENT if channels else NotificationStatus.SKIPPED
            )
        sequences = [n.details.get("sequence") for n in notifications if n.details]
        sequences = [number for number in sequences if isinstance(number, int)]
        if channels and session_id is not None and sequences:
            key = (session_id, series_id)
            told[key] = max(told.get(key, 0), *sequences)
        last_id = notifications[-1].id
        changes = [
            {"kind": n.kind.value, "details": n.details, "at": n.created_at.isoformat()}
            for n in notifications
        ]
        rows.append(
            # One who cannot be reached gets a skipped row with the reason: the organizer
            # and the admin see who was not told, and why.
            outbox_row(
                f"n:{user_id}:{series_id}:{session_id or '-'}:{last_id}:person",
                DeliveryKind.NOTICE,
                channels[0] if channels else Channel.EMAIL,
                series_id=series_id,
                due_at=now,
                now=now,
                user_id=user_id,
                session_id=session_id,
                # The sending step asks channels_for() again with the same answer.
                payload={"changes": changes, "late_change": late_change},
                skipped_because=reason,
            )
        )
    _insert_ignoring_duplicates(rows)
    db.session.flush()
    if rows:
        wake(Wake.DISPATCH)
    for (session_id, series_id), sequence in told.items():
        events.change_notice_composed.send(
            None, session_id=session_id, series_id=series_id, sequence=sequence, at=now
        )
    return sum(row["last_error"] is None for row in rows)  # those who will be told


LATE_CHANGE = timedelta(hours=24)


def _calendar_missed_late_change(
    user: User, notifications: list[Notification], calendars: dict[int, datetime | None]
) -> bool:
    """A session moved or cancelled less than a day before it starts, and the person's
    subscribed calendar has not fetched since: calendar apps may poll only every few hours,
    so the change is sent by mail even to those who turned mail off."""
    changes = [n for n in notifications if n.kind.value in ("rescheduled", "cancelled")]
    if not changes:
        return False
    first = changes[0]
    starts = [first.details.get("old_starts_at"), first.details.get("new_starts_at")]
    session = db.session.get(LectureSession, first.session_id) if first.session_id else None
    if session is not None:
        starts.append(session.starts_at.isoformat())
    soonest = min(datetime.fromisoformat(s) for s in starts if s)
    if soonest - first.created_at > LATE_CHANGE:
        return False
    if user.id not in calendars:
        return False  # not subscribed: nothing in their calendar to go stale
    last_fetched = calendars[user.id]
    return last_fetched is None or last_fetched < first.created_at
