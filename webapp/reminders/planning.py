"""Planning the outbox: one row per reminder due (participant, rule, channel, the
session's sequence), robot digests and mentions, inserted without conflict by any number
of workers at once."""

from collections import defaultdict
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import String, cast, literal, select

from webapp.db import db, insert_new
from webapp.people.models import Unit, User
from webapp.people.units import (
    unit_and_descendant_ids,
)
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    ReminderPlan,
    ReminderRule,
    Webhook,
)
from webapp.reminders.reach import channel_order, channels_for, contact_of, not_found_by_user
from webapp.reminders.services import (
    MAX_RULE_MINUTES,
    PLANNING_MARGIN,
)
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
)
from webapp.sessions.models import AttendanceEvent, LectureSession, SessionStatus
from webapp.wakeups import Wake, wake

# --- planning -----------------------------------------------------------------------------


def _insert_ignoring_duplicates(rows: list[dict]) -> None:
    """Insert outbox rows; a row whose key exists already is left alone (never twice)."""
    insert_new(Delivery, rows, ["key"])


def outbox_row(
    key: str,
    kind: DeliveryKind,
    channel: Channel,
    *,
    series_id: int,
    due_at: datetime,
    now: datetime,
    user_id: int | None = None,
    session_id: int | None = None,
    rule_id: int | None = None,
    webhook_id: int | None = None,
    sequence: int = 0,
    payload: dict | None = None,
    skipped_because: str | None = None,
) -> dict:
    """One outbox row, as the bulk insert takes it."""
    status = DeliveryStatus.SKIPPED if skipped_because else DeliveryStatus.PENDING
    return {
        "key": key,
        "kind": kind.value,
        "channel": channel.value,
        "user_id": user_id,
        "series_id": series_id,
        "session_id": session_id,
        "rule_id": rule_id,
        "webhook_id": webhook_id,
        "sequence": sequence,
        "payload": payload or {},
        "due_at": due_at,
        "status": status.value,
        "attempts": 0,
        "last_error": skipped_because,
        "created_at": now,
    }


def reminder_key(session_id: int, user_id: int, rule_id: int, sequence: int):
    """One reminder per person, rule and version of the session, whichever channel it
    ends up going by."""
    return f"r:{session_id}:{user_id}:{rule_id}:person:{sequence}"


def _reminder_key_sql(session: LectureSession, rule: ReminderRule):
    """reminder_key() of each User row, as SQL."""
    return (
        literal(f"r:{session.id}:")
        + cast(User.id, String)
        + literal(f":{rule.id}:person:{session.sequence}")
    )


def plan_reminders(*, now: datetime, horizon: timedelta | None = None) -> int:
    """Write the reminder rows coming due within the horizon (and late ones still useful).

    A reminder whose time has passed is written once only if its session has not started
    and no later reminder of the same session is also due: after downtime, participants
    get the most recent useful reminder, never a burst of stale ones."""
    horizon = horizon or timedelta(seconds=current_app.config["REMINDER_PLANNING_HORIZON"])
    candidates = db.session.execute(
        select(LectureSession, ReminderRule)
        .join(Series, Series.id == LectureSession.series_id)
        .join(ReminderRule, ReminderRule.series_id == Series.id)
        .where(
            Series.status == SeriesStatus.PUBLISHED,
            # A broadcast may go on the air up to half an hour early: still remind.
            LectureSession.status.in_([SessionStatus.SCHEDULED, SessionStatus.LIVE]),
            LectureSession.published_at.is_not(None),
            LectureSession.starts_at > now,
            LectureSession.starts_at <= now + horizon + timedelta(minutes=MAX_RULE_MINUTES),
        )
    ).all()
    due_by_session: dict[int, list[tuple[datetime, ReminderRule]]] = defaultdict(list)
    sessions: dict[int, LectureSession] = {}
    for session, rule in candidates:
        due_at = session.starts_at - timedelta(minutes=rule.minutes_before)
        if due_at <= now + horizon:
            due_by_session[session.id].append((due_at, rule))
            sessions[session.id] = session
    planned = 0
    for session_id, dues in due_by_session.items():
        session = sessions[session_id]
        # A late reminder is only worth sending if no later one is due now or soon.
        latest = max(due for due, _rule in dues)
        superseded = {rule.id for due, rule in dues if due <= now and due < latest}
        for due_at, rule in dues:
            planned += _plan_one(session, rule, due_at, skipped=rule.id in superseded, now=now)
    db.session.flush()
    return planned


def _plan_one(
    session: LectureSession, rule: ReminderRule, due_at: datetime, *, skipped: bool, now: datetime
) -> int:
    marker = db.session.get(ReminderPlan, (session.id, rule.id, session.sequence))
    query = (
        select(User)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(
            Enrollment.series_id == session.series_id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            User.is_active.is_(True),
        )
    )
    if marker is not None:
        # Only those who joined (or came back) since the last planning, less those already
        # planned. The margin covers enrollments committed by transactions that began
        # before the last sweep read the table.
        query = query.where(
            Enrollment.updated_at >= marker.planned_at - PLANNING_MARGIN,
            # Looked up by its unique key (one index probe per person): a plan that filters
            # on session and rule columns instead scans every row of the session per person.
            ~select(Delivery.id).where(Delivery.key == _reminder_key_sql(session, rule)).exists(),
        )
    users = list(db.session.scalars(query))
    superseded = "a later reminder was due as well" if skipped else None
    order = channel_order()
    not_found = not_found_by_user([user.id for user in users], now=now)
    rows, unreachable = [], 0
    for user in users:
        # The first channel that reaches the person; none: the row records why (the
        # organizer and the admin see who cannot be reached).
        channels, reason = channels_for(
            contact_of(user, not_found.get(user.id, frozenset())), order, DeliveryKind.REMINDER
        )
        rows.append(
            outbox_row(
                reminder_key(session.id, user.id, rule.id, session.sequence),
                DeliveryKind.REMINDER,
                channels[0] if channels else Channel.EMAIL,
                series_id=session.series_id,
                due_at=due_at,
                now=now,
                user_id=user.id,
                session_id=session.id,
                rule_id=rule.id,
                sequence=session.sequence,
                skipped_because=superseded or reason,
            )
        )
        unreachable += reason is not None
    _insert_ignoring_duplicates(rows)
    if rows and due_at <= now:
        wake(Wake.DISPATCH)  # due already (a session moved close): the workers send at once
    if marker is None:
        _plan_digests(session, rule, due_at, skipped=skipped, now=now)
        # Several workers may plan the same session at once: the first marker wins, the
        # others' rows were refused by their keys above.
        insert_new(
            ReminderPlan,
            [
                {
                    "session_id": session.id,
                    "rule_id": rule.id,
                    "sequence": session.sequence,
                    "planned_at": now,
                }
            ],
            ["session_id", "rule_id", "sequence"],
        )
    else:
        marker.planned_at = now
    return len(rows) - unreachable


def webhooks_for_series(series_id: int) -> list[Webhook]:
    """The series' robots and the robots of every unit with members in the series."""
    webhooks = db.session.scalars(
        select(Webhook)
        .where(Webhook.is_active.is_(True))
        .where((Webhook.series_id == series_id) | Webhook.unit_id.is_not(None))
        .order_by(Webhook.id)
    ).all()
    chosen = [w for w in webhooks if w.series_id == series_id]
    unit_webhooks = [w for w in webhooks if w.unit_id is not None]
    if not unit_webhooks:
        return chosen
    member_units = set(
        db.session.scalars(
            select(User.unit_id)
            .distinct()
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(
                Enrollment.series_id == series_id,
                Enrollment.status == EnrollmentStatus.ENROLLED,
                User.unit_id.is_not(None),
            )
        )
    )
    for webhook in unit_webhooks:
        subtree = set(unit_and_descendant_ids(db.session.get(Unit, webhook.unit_id)))
        if subtree & member_units:
            chosen.append(webhook)
    return chosen


def _plan_digests(
    session: LectureSession,
    rule: ReminderRule,
    due_at: datetime,
    *,
    skipped: bool,
    now: datetime,
) -> None:
    """One message per group robot (per series or per unit), never one per person."""
    superseded = "a later reminder was due as well" if skipped else None
    _insert_ignoring_duplicates(
        [
            outbox_row(
                f"w:{session.id}:{webhook.id}:{rule.id}:{session.sequence}",
                DeliveryKind.DIGEST,
                Channel.WEBHOOK,
                series_id=session.series_id,
                due_at=due_at,
                now=now,
                session_id=session.id,
                rule_id=rule.id,
                webhook_id=webhook.id,
                sequence=session.sequence,
                skipped_because=superseded,
            )
            for webhook in webhooks_for_series(session.series_id)
        ]
    )


MENTION_AFTER = timedelta(minutes=5)


def plan_mentions(*, now: datetime, horizon: timedelta | None = None) -> int:
    """Five minutes after each session starts, one message per unit robot that asks for it,
    @-mentioning the unit's members who have not joined (worked out when it is sent)."""
    horizon = horizon or timedelta(seconds=current_app.config["REMINDER_PLANNING_HORIZON"])
    robots = db.session.scalars(
        select(Webhook).where(
            Webhook.is_active.is_(True),
            Webhook.mentions_absent.is_(True),
            Webhook.unit_id.is_not(None),
        )
    ).all()
    if not robots:
        return 0
    sessions = db.session.scalars(
        select(LectureSession)
        .join(Series, Series.id == LectureSession.series_id)
        .where(
            Series.status == SeriesStatus.PUBLISHED,
            LectureSession.status.in_([SessionStatus.SCHEDULED, SessionStatus.LIVE]),
            LectureSession.published_at.is_not(None),
            LectureSession.starts_at <= now + horizon - MENTION_AFTER,
            LectureSession.ends_at > now,
        )
    ).all()
    rows = []
    for session in sessions:
        for webhook in webhooks_for_series(session.series_id):
            if not (webhook.mentions_absent and webhook.unit_id):
                continue
            rows.append(
                outbox_row(
                    f"m:{session.id}:{webhook.id}:{session.sequence}",
                    DeliveryKind.MENTION,
                    Channel.WEBHOOK,
                    series_id=session.series_id,
                    due_at=session.starts_at + MENTION_AFTER,
                    now=now,
                    session_id=session.id,
                    webhook_id=webhook.id,
                    sequence=session.sequence,
                )
            )
    _insert_ignoring_duplicates(rows)
    db.session.flush()
    return len(rows)


def absent_members(session: LectureSession, unit_id: int) -> list[User]:
    """Enrolled members of the unit (and its sub-units) with a mobile number who have not
    joined the session in any way (the join button, the player, an RTMP play)."""
    unit_ids = unit_and_descendant_ids(db.session.get(Unit, unit_id))
    joined = select(AttendanceEvent.user_id).where(AttendanceEvent.session_id == session.id)
    return list(
        db.session.scalars(
            select(User)
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(
                Enrollment.series_id == session.series_id,
                Enrollment.status == EnrollmentStatus.ENROLLED,
                User.unit_id.in_(unit_ids),
                User.phone.is_not(None),
                User.id.not_in(joined),
            )
            .order_by(User.id)
        ).all()
    )
