"""What reminders do when something happens elsewhere (webapp/events.py): a new series gets
the default rules; a moved or cancelled session loses its pending reminders and its
participants are told; a replaced speaker is told too; someone enrolled is welcomed; someone
who left gets no more reminders. Each runs in the transaction of the change it hears."""

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import JSON, insert, literal, select, update

from webapp import events
from webapp.db import UTCDateTime, db, utcnow
from webapp.people.models import User
from webapp.reminders.models import (
    Notification,
    NotificationKind,
    NotificationStatus,
    ReminderRule,
    Webhook,
)
from webapp.reminders.rules import (
    add_default_rules,
)
from webapp.reminders.services import (
    drop_pending_for_participant,
    drop_pending_reminders,
)
from webapp.series.models import Enrollment, EnrollmentStatus, Series, SeriesStatus
from webapp.sessions.models import LectureSession
from webapp.wakeups import Wake, wake


def notify_enrolled(
    session_id: int, series_id: int, kind: NotificationKind, details: dict, *, now: datetime
) -> None:
    """One pending notification per enrolled participant, written by one INSERT … SELECT
    (a series of thousands must not make the organizer's request slow)."""
    enrolled = select(
        Enrollment.user_id,
        literal(series_id),
        literal(session_id),
        literal(kind.value),
        literal(details, type_=JSON),
        literal(NotificationStatus.PENDING.value),
        literal(now, type_=UTCDateTime),
    ).where(
        Enrollment.series_id == series_id,
        Enrollment.status == EnrollmentStatus.ENROLLED,
    )
    db.session.execute(
        insert(Notification.__table__).from_select(
            ["user_id", "series_id", "session_id", "kind", "details", "status", "created_at"],
            enrolled,
        )
    )


def _reminder_due_soon(series_id: int, starts_at: datetime, *, now: datetime) -> bool:
    """Whether a reminder of the series falls due within the planning horizon for a session
    starting then (the worker's next planning would write it)."""
    horizon = timedelta(seconds=current_app.config["REMINDER_PLANNING_HORIZON"])
    minutes = db.session.scalars(
        select(ReminderRule.minutes_before).where(ReminderRule.series_id == series_id)
    )
    return starts_at > now and any(
        starts_at - timedelta(minutes=m) <= now + horizon for m in minutes
    )


@events.series_created.connect
def _default_rules(_sender, *, series_id: int, **_facts) -> None:
    add_default_rules(db.session.get(Series, series_id))


@events.session_moved.connect
def _moved(
    _sender,
    *,
    session_id: int,
    series_id: int,
    old_starts_at: datetime,
    old_ends_at: datetime,
    new_starts_at: datetime,
    new_ends_at: datetime,
    sequence: int,
    published: bool,
    at: datetime | None = None,
    reason: str | None = None,
    **_facts,
) -> None:
    drop_pending_reminders(db.session.get(LectureSession, session_id), reason="the session moved")
    if published and _reminder_due_soon(series_id, new_starts_at, now=at or utcnow()):
        wake(Wake.PLAN)  # moved to within a reminder's reach: plan (and send) it now
    if published:
        details = {
            "reason": reason,
            "old_starts_at": old_starts_at.isoformat(),
            "old_ends_at": old_ends_at.isoformat(),
            "new_starts_at": new_starts_at.isoformat(),
            "new_ends_at": new_ends_at.isoformat(),
            "sequence": sequence,
        }
        notify_enrolled(
            session_id, series_id, NotificationKind.RESCHEDULED, details, now=at or utcnow()
        )


@events.session_cancelled.connect
def _cancelled(
    _sender,
    *,
    session_id: int,
    series_id: int,
    reason: str,
    sequence: int,
    published: bool,
    at: datetime | None = None,
    **_facts,
) -> None:
    session = db.session.get(LectureSession, session_id)
    drop_pending_reminders(session, reason="the session was cancelled")
    if published:
        details = {"reason": reason, "sequence": sequence}
        notify_enrolled(
            session_id, series_id, NotificationKind.CANCELLED, details, now=at or utcnow()
        )


@events.lecture_changed.connect
def _speakers_replaced(
    _sender,
    *,
    session_id: int,
    series_id: int,
    lecture: str,
    old_speakers: list[str],
    new_speakers: list[str],
    published: bool,
    at: datetime | None = None,
    **_facts,
) -> None:
    if published and sorted(old_speakers) != sorted(new_speakers):
        details = {"lecture": lecture, "old_speakers": old_speakers, "new_speakers": new_speakers}
        notify_enrolled(
            session_id, series_id, NotificationKind.AGENDA_CHANGED, details, now=at or utcnow()
        )


@events.enrollment_started.connect
def _welcome(
    _sender,
    *,
    series_id: int,
    user_id: int,
    waitlisted: bool,
    promoted: bool,
    quiet: bool,
    at: datetime | None = None,
    **_facts,
) -> None:
    if waitlisted or quiet:
        return
    series = db.session.get(Series, series_id)
    if series.status == SeriesStatus.DRAFT:
        return  # nobody is told about a series that is not out yet
    db.session.add(
        Notification(
            user_id=user_id,
            series_id=series_id,
            kind=NotificationKind.PROMOTED if promoted else NotificationKind.ENROLLED,
            details={},
            created_at=at or utcnow(),
        )
    )


@events.enrollment_ended.connect
def _left(_sender, *, series_id: int, user_id: int, **_facts) -> None:
    drop_pending_for_participant(db.session.get(User, user_id), db.session.get(Series, series_id))


@events.attendance_finalized.connect
def _attendance_final(
    _sender, *, session_id: int, series_id: int, counts: dict, by_hand: bool, **_facts
) -> None:
    """The organizers get the summary through their first channel, once per finalisation by
    the worker (a recomputation by hand is seen on the page by whoever made it)."""
    if by_hand:
        return
    series = db.session.get(Series, series_id)
    now = utcnow()
    for organizer in series.organizers:
        db.session.add(
            Notification(
                user_id=organizer.id,
                series_id=series_id,
                session_id=session_id,
                kind=NotificationKind.ATTENDANCE,
                details={"counts": counts},
                created_at=now,
            )
        )


@events.units_merged.connect
def _units_merged(_sender, *, source_id: int, target_id: int, **_facts) -> None:
    # The merged unit's group robots are the target unit's now.
    db.session.execute(
        update(Webhook)
        .where(Webhook.unit_id == source_id)
        .values(unit_id=target_id)
        .execution_options(synchronize_session=False)
    )
