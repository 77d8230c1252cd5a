"""Reminder rules, planning reminder rows, composing change notices, and the outbox
operations other domains call (drop pending reminders when a session moves or someone
leaves). Every function flushes; the caller commits."""

import os
import socket
from collections import defaultdict
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import String, case, cast, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import selectinload

from webapp.db import db
from webapp.errors import (
    Conflict,
    InvalidInput,
    PermissionDenied,
)
from webapp.feeds.models import FeedKind, FeedToken
from webapp.outgoing import ForbiddenAddress, check_url
from webapp.people.models import Unit, User
from webapp.people.services import (
    is_liaison_for,
    unit_and_descendant_ids,
)
from webapp.reminders.audience import wants_mail, wants_reminder_mail
from webapp.reminders.fence import fence_series
from webapp.reminders.models import (
    DEFAULT_RULE_MINUTES,
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Notification,
    NotificationStatus,
    ReminderPlan,
    ReminderRule,
    Webhook,
    WebhookKind,
    WorkerHeartbeat,
)
from webapp.series.models import (
    Enrollment,
    EnrollmentStatus,
    Series,
    SeriesStatus,
)
from webapp.sessions.models import LectureSession, SessionJoin, SessionStatus
from webapp.text import clean_line

MAX_RULE_MINUTES = 30 * 24 * 60
PLANNING_MARGIN = timedelta(minutes=5)
OPEN = (DeliveryStatus.PENDING, DeliveryStatus.CLAIMED)

# --- rules ---------------------------------------------------------------------------------


def rules_for(series: Series) -> list[ReminderRule]:
    return list(
        db.session.scalars(
            select(ReminderRule)
            .where(ReminderRule.series_id == series.id)
            .order_by(ReminderRule.minutes_before.desc())
        ).all()
    )


def add_default_rules(series: Series) -> None:
    """Give a new series the default reminders: a day and a quarter of an hour before."""
    for minutes in DEFAULT_RULE_MINUTES:
        db.session.add(ReminderRule(series_id=series.id, minutes_before=minutes))
    db.session.flush()


def add_rule(series: Series, minutes_before: int) -> ReminderRule:
    """Remind participants of every session this many minutes before it starts."""
    if not 1 <= minutes_before <= MAX_RULE_MINUTES:
        raise InvalidInput(
            _("A reminder can be sent between 1 minute and 30 days before a session."),
            field="amount",
        )
    if any(rule.minutes_before == minutes_before for rule in rules_for(series)):
        raise Conflict(_("This series already has that reminder."), field="amount")
    rule = ReminderRule(series_id=series.id, minutes_before=minutes_before)
    db.session.add(rule)
    db.session.flush()
    return rule


def delete_rule(rule: ReminderRule) -> None:
    """Stop a reminder; its rows not yet sent are dropped."""
    db.session.execute(
        update(Delivery)
        .where(Delivery.rule_id == rule.id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, last_error="reminder rule removed")
    )
    db.session.delete(rule)
    db.session.flush()


def add_webhook(
    *,
    name: str,
    kind: WebhookKind,
    url: str,
    secret: str | None,
    by: User,
    series: Series | None = None,
    unit: Unit | None = None,
    mentions_absent: bool = False,
) -> Webhook:
    """Connect a group robot or HTTP endpoint to a series or to a unit (a unit robot only
    by an admin or the unit's liaison)."""
    if unit is not None and not may_attach_unit_robot(by, unit):
        raise PermissionDenied(
            _("Only an administrator or the unit's liaison can connect a robot to a unit."),
            field="scope",
        )
    name, url = clean_line(name), clean_line(url)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    try:
        check_url(url)
    except ForbiddenAddress as error:
        raise InvalidInput(str(error), field="url") from error
    webhook = Webhook(
        name=name,
        kind=kind,
        url=url,
        secret=(secret or "").strip() or None,
        series_id=series.id if series else None,
        unit_id=unit.id if unit else None,
        mentions_absent=mentions_absent and unit is not None,
    )
    db.session.add(webhook)
    db.session.flush()
    return webhook


def webhooks_for_series_page(series: Series) -> list[Webhook]:
    """What the series' organizers see and may remove."""
    return webhooks_for_series(series.id)


def may_attach_unit_robot(user: User, unit: Unit | None) -> bool:
    """A unit robot receives every series' digest for its unit, with join links: only an
    admin or the unit's liaison connects (or removes) one."""
    return unit is not None and (user.is_admin or is_liaison_for(user, unit))


def remove_webhook(webhook: Webhook) -> None:
    """Disconnect a robot; its messages not yet sent are dropped with it."""
    db.session.delete(webhook)
    db.session.flush()


# --- dropping pending rows ----------------------------------------------------------------


def drop_pending_reminders(session: LectureSession, *, reason: str) -> int:
    """Cancel the session's reminders not sent yet (it moved or was cancelled). The planner
    writes new ones for the new time. A claimed row is re-checked by its worker before it is
    sent; the fence makes this transaction commit only between two sends."""
    fence_series(session.series_id)
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.session_id == session.id,
            Delivery.kind.in_([DeliveryKind.REMINDER, DeliveryKind.DIGEST]),
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error=reason)
    )
    return result.rowcount


def drop_pending_for_participant(user: User, series: Series) -> int:
    """Cancel reminders for someone who left the series (fenced like a cancellation)."""
    fence_series(series.id)
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.user_id == user.id,
            Delivery.series_id == series.id,
            Delivery.kind == DeliveryKind.REMINDER,
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, last_error="left the series")
    )
    return result.rowcount


# --- planning -----------------------------------------------------------------------------


def _insert_ignoring_duplicates(rows: list[dict]) -> None:
    """Insert outbox rows; a row whose key exists already is left alone (never twice)."""
    _insert_new(Delivery, rows, ["key"])


def _insert_new(model, rows: list[dict], keys: list[str]) -> None:
    """Insert rows; one whose key exists already (perhaps written a moment ago by another
    worker) is left alone, without an error."""
    if not rows:
        return
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 1000):
        statement = insert(model).values(rows[start : start + 1000])
        db.session.execute(statement.on_conflict_do_nothing(index_elements=keys))


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


def reminder_key(session_id: int, user_id: int, rule_id: int, channel: Channel, sequence: int):
    return f"r:{session_id}:{user_id}:{rule_id}:{channel.value}:{sequence}"


def _reminder_key_sql(session: LectureSession, rule: ReminderRule, channel: Channel):
    """reminder_key() of each User row, as SQL."""
    return (
        literal(f"r:{session.id}:")
        + cast(User.id, String)
        + literal(f":{rule.id}:{channel.value}:{session.sequence}")
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
            LectureSession.status == SessionStatus.SCHEDULED,
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
        select(User.id)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(
            Enrollment.series_id == session.series_id,
            Enrollment.status == EnrollmentStatus.ENROLLED,
            wants_reminder_mail(),
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
            ~select(Delivery.id)
            .where(Delivery.key == _reminder_key_sql(session, rule, Channel.EMAIL))
            .exists(),
        )
    user_ids = list(db.session.scalars(query))
    superseded = "a later reminder was due as well" if skipped else None
    rows = [
        outbox_row(
            reminder_key(session.id, user_id, rule.id, Channel.EMAIL, session.sequence),
            DeliveryKind.REMINDER,
            Channel.EMAIL,
            series_id=session.series_id,
            due_at=due_at,
            now=now,
            user_id=user_id,
            session_id=session.id,
            rule_id=rule.id,
            sequence=session.sequence,
            skipped_because=superseded,
        )
        for user_id in user_ids
    ]
    _insert_ignoring_duplicates(rows)
    if marker is None:
        _plan_digests(session, rule, due_at, skipped=skipped, now=now)
        # Several workers may plan the same session at once: the first marker wins, the
        # others' rows were refused by their keys above.
        _insert_new(
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
    return len(rows)


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
    joined the session."""
    unit_ids = unit_and_descendant_ids(db.session.get(Unit, unit_id))
    joined = select(SessionJoin.user_id).where(SessionJoin.session_id == session.id)
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
    for (user_id, series_id, session_id), notifications in groups.items():
        if max(n.created_at for n in notifications) > now - window:
            continue  # more changes may follow; wait until they settle
        user = users[user_id]
        late_change = not user.email_reminders and _calendar_missed_late_change(
            user, notifications, calendars
        )
        mail = wants_mail(
            DeliveryKind.NOTICE,
            is_active=user.is_active,
            email=user.email,
            email_reminders=user.email_reminders,
            late_change=late_change,
        )
        for notification in notifications:
            notification.status = NotificationStatus.SENT if mail else NotificationStatus.SKIPPED
        if not mail:
            continue
        last_id = notifications[-1].id
        changes = [
            {"kind": n.kind.value, "details": n.details, "at": n.created_at.isoformat()}
            for n in notifications
        ]
        rows.append(
            outbox_row(
                f"n:{user_id}:{series_id}:{session_id or '-'}:{last_id}:email",
                DeliveryKind.NOTICE,
                Channel.EMAIL,
                series_id=series_id,
                due_at=now,
                now=now,
                user_id=user_id,
                session_id=session_id,
                # The sending step asks wants_mail() again with the same answer.
                payload={"changes": changes, "late_change": late_change},
            )
        )
    _insert_ignoring_duplicates(rows)
    db.session.flush()
    return len(rows)


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


# --- admin -----------------------------------------------------------------------------------


def retry_delivery(delivery: Delivery, *, now: datetime) -> None:
    """Send a failed row again, from scratch."""
    if delivery.status != DeliveryStatus.FAILED:
        raise Conflict(_("Only failed messages can be retried."))
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.due_at = now
    delivery.claimed_by = None
    delivery.lease_until = None
    db.session.flush()


def retry_all_failed(*, now: datetime) -> int:
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.FAILED)
        .values(
            status=DeliveryStatus.PENDING, attempts=0, due_at=now, claimed_by=None, lease_until=None
        )
    )
    return result.rowcount


def delivery_counts() -> dict[str, int]:
    counts = dict(
        db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    )
    return {status.value: counts.get(status, 0) for status in DeliveryStatus}


def failed_deliveries(limit: int = 100) -> list[Delivery]:
    return list(
        db.session.scalars(
            select(Delivery)
            .where(Delivery.status == DeliveryStatus.FAILED)
            .options(selectinload(Delivery.user))
            .order_by(Delivery.id.desc())
            .limit(limit)
        ).all()
    )


# --- workers ---------------------------------------------------------------------------------


def this_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(worker_id: str, *, now: datetime, started_at: datetime, sent: int = 0) -> None:
    """Record that this worker is alive (and how much it has sent)."""
    heartbeat = db.session.get(WorkerHeartbeat, worker_id)
    if heartbeat is None:
        hostname, _sep, pid = worker_id.rpartition(":")
        heartbeat = WorkerHeartbeat(
            worker_id=worker_id,
            hostname=hostname,
            pid=int(pid) if pid.isdigit() else 0,
            started_at=started_at,
            last_beat_at=now,
        )
        db.session.add(heartbeat)
    heartbeat.last_beat_at = now
    heartbeat.sent_total = (heartbeat.sent_total or 0) + sent
    db.session.flush()


def renew_claims(worker_id: str, *, now: datetime, lease: timedelta) -> int:
    """Extend the leases of the rows this worker holds: a live worker keeps its rows however
    long one send takes, a dead one loses them when its last lease runs out."""
    # Rows being written this very moment (an outcome on its way) are skipped, not waited
    # for: the writer and the heartbeat never wait on each other.
    held = (
        select(Delivery.id)
        .where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.CLAIMED)
        .order_by(Delivery.id)
        .with_for_update(skip_locked=True)
    )
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(held))
        .values(lease_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def release_claims(worker_id: str) -> int:
    """Give back the rows a stopping worker holds, as if never claimed: they go out at once
    from another worker (or this one when it starts again)."""
    result = db.session.execute(
        update(Delivery)
        .where(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.CLAIMED)
        .values(
            status=DeliveryStatus.PENDING,
            lease_until=None,
            attempts=case((Delivery.attempts > 0, Delivery.attempts - 1), else_=0),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def missed_deliveries() -> list[tuple[str, str | None, str | None, int]]:
    """What could not go out usefully, counted: (status, reason, the worker it was taken
    from, count), most first. Missed rows and rows in doubt, never mixed with skipped ones."""
    return [
        (status.value, reason, worker, count)
        for status, reason, worker, count in db.session.execute(
            select(Delivery.status, Delivery.last_error, Delivery.taken_from, func.count())
            .where(Delivery.status.in_([DeliveryStatus.MISSED, DeliveryStatus.IN_DOUBT]))
            .group_by(Delivery.status, Delivery.last_error, Delivery.taken_from)
            .order_by(func.count().desc())
        ).all()
    ]


def worker_heartbeats() -> list[WorkerHeartbeat]:
    return list(
        db.session.scalars(
            select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_beat_at.desc())
        ).all()
    )


def enrolled_in_scope(series: Series, unit_id: int | None) -> int:
    """How many are enrolled in the series: all of them, or those of a unit and its sub-units."""
    query = (
        select(func.count())
        .select_from(Enrollment)
        .where(Enrollment.series_id == series.id, Enrollment.status == EnrollmentStatus.ENROLLED)
    )
    if unit_id is not None:
        unit_ids = unit_and_descendant_ids(db.session.get(Unit, unit_id))
        query = query.join(User, User.id == Enrollment.user_id).where(User.unit_id.in_(unit_ids))
    return db.session.scalar(query)
