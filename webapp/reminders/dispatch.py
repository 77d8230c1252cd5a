"""The dispatcher: claim due rows so that two workers can never both win one, send them,
record what happened. A claim carries a lease; when its worker dies, the lease runs out and
another worker takes the row over (so at most the rows in flight can go out twice)."""

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from webapp.db import db, utcnow
from webapp.people.models import User
from webapp.reminders.channels import DeliveryError, EmailChannel, WebhookChannel
from webapp.reminders.messages import (
    SharedMail,
    digest_text,
    mention_text,
    mobile_for_robot,
    personalise,
    render_notice,
    render_reminder,
    user_language,
    user_zone,
)
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    ReminderRule,
    Webhook,
)
from webapp.reminders.services import absent_members
from webapp.series.models import Enrollment, EnrollmentStatus, Series
from webapp.sessions.models import Lecture, LectureSession, SessionStatus

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: DeliveryStatus
    error: str | None = None
    retry_after: float | None = None
    deferred: bool = False  # held back (rate limit): the try does not count


@dataclass
class DispatchStats:
    claimed: int = 0
    by_status: Counter = field(default_factory=Counter)

    @property
    def sent(self) -> int:
        return self.by_status[DeliveryStatus.SENT]

    def add(self, other: "DispatchStats") -> None:
        self.claimed += other.claimed
        self.by_status.update(other.by_status)


def claim_due(worker_id: str, *, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Claim up to `limit` due rows (and rows whose lease ran out) and commit the claim.

    On PostgreSQL the inner SELECT takes row locks with SKIP LOCKED, so concurrent workers
    take disjoint batches; SQLite runs one writer at a time, so the UPDATE is atomic."""
    due = or_(
        and_(Delivery.status == DeliveryStatus.PENDING, Delivery.due_at <= now),
        and_(Delivery.status == DeliveryStatus.CLAIMED, Delivery.lease_until < now),
    )
    candidates = (
        select(Delivery.id)
        .where(due)
        .order_by(Delivery.due_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(candidates))
        .values(
            status=DeliveryStatus.CLAIMED,
            claimed_by=worker_id,
            lease_until=now + lease,
            attempts=Delivery.attempts + 1,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(db.session.scalars(statement).all())
    db.session.commit()
    return ids


def dispatch_due(
    *,
    worker_id: str,
    now_fn: Callable[[], datetime] = utcnow,
    batch_size: int | None = None,
    max_batches: int = 100,
    wait: timedelta = timedelta(0),
) -> DispatchStats:
    """Send everything that is due, batch after batch, until nothing is left.

    With `wait`, a row coming due within that time is waited for, so a worker polling every
    second sends on the due second rather than up to a second late."""
    config = current_app.config
    batch_size = batch_size or config["DISPATCH_BATCH_SIZE"]
    lease = timedelta(seconds=config["DISPATCH_LEASE_SECONDS"])
    total = DispatchStats()
    cache: dict[tuple, SharedMail] = {}
    deadline = now_fn() + wait
    for _ in range(max_batches):
        ids = claim_due(worker_id, now=now_fn(), limit=batch_size, lease=lease)
        if not ids:
            if not _sleep_until_next_due(now_fn, deadline):
                break
            continue
        total.add(_send_batch(ids, worker_id=worker_id, now_fn=now_fn, cache=cache))
    return total


def _sleep_until_next_due(now_fn: Callable[[], datetime], deadline: datetime) -> bool:
    """Sleep until the next pending row is due, if that is before the deadline."""
    next_due = db.session.scalar(
        select(func.min(Delivery.due_at)).where(Delivery.status == DeliveryStatus.PENDING)
    )
    db.session.commit()
    now = now_fn()
    if next_due is None or next_due > deadline or now >= deadline:
        return False
    time.sleep(max((next_due - now).total_seconds(), 0.01))
    return True


@dataclass(frozen=True)
class Job:
    """A claimed row with what sending it needs (plain values: cheap to load in bulk)."""

    id: int
    key: str
    kind: DeliveryKind
    channel: Channel
    series_id: int
    session_id: int | None
    rule_id: int | None
    sequence: int
    payload: dict
    attempts: int
    webhook_id: int | None
    user_id: int | None
    email: str | None
    display_name: str | None
    locale: str | None
    timezone: str | None
    is_active: bool | None
    email_reminders: bool | None

    @property
    def wants_mail(self) -> bool:
        return bool(self.user_id and self.is_active and self.email and self.email_reminders)


def _load(ids: list[int]) -> list[Job]:
    rows = db.session.execute(
        select(
            Delivery.id,
            Delivery.key,
            Delivery.kind,
            Delivery.channel,
            Delivery.series_id,
            Delivery.session_id,
            Delivery.rule_id,
            Delivery.sequence,
            Delivery.payload,
            Delivery.attempts,
            Delivery.webhook_id,
            Delivery.user_id,
            User.email,
            User.display_name,
            User.locale,
            User.timezone,
            User.is_active,
            User.email_reminders,
        )
        .outerjoin(User, User.id == Delivery.user_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()
    return [Job(*row) for row in rows]


def _send_batch(ids: list[int], *, worker_id: str, now_fn, cache: dict) -> DispatchStats:
    deliveries = _load(ids)
    now = now_fn()
    sessions = {
        session.id: session
        for session in db.session.scalars(
            select(LectureSession)
            .where(LectureSession.id.in_({d.session_id for d in deliveries if d.session_id}))
            .options(
                selectinload(LectureSession.series),
                selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
            )
        )
    }
    rules = {
        rule.id: rule
        for rule in db.session.scalars(
            select(ReminderRule).where(
                ReminderRule.id.in_({d.rule_id for d in deliveries if d.rule_id})
            )
        )
    }
    enrolled = set(
        db.session.execute(
            select(Enrollment.user_id, Enrollment.series_id).where(
                Enrollment.user_id.in_({d.user_id for d in deliveries if d.user_id}),
                Enrollment.status == EnrollmentStatus.ENROLLED,
            )
        ).all()
    )
    config = current_app.config
    outcomes: dict[int, Outcome] = {}
    by_robot = [d for d in deliveries if d.channel == Channel.WEBHOOK]
    if by_robot:
        outcomes.update(_send_digests(by_robot, sessions, rules, now=now))
    with EmailChannel(
        config["MAIL_URL"],
        sender=config["MAIL_FROM"],
        timeout=config["MAIL_TIMEOUT"],
        ca_file=config["MAIL_CA_FILE"],
    ) as email:
        for delivery in deliveries:
            if delivery.channel != Channel.EMAIL:
                continue
            session = sessions.get(delivery.session_id) if delivery.session_id else None
            try:
                outcome = _check(delivery, session, enrolled, now=now)
            except Exception as error:
                outcome = _poisoned(delivery, error)
            if outcome is None:
                outcome = _send_email(delivery, session, rules, email, cache, now=now)
            outcomes[delivery.id] = outcome
    return _record(deliveries, outcomes, worker_id=worker_id, now=now_fn())


def _session_gone(
    delivery: Job, session: LectureSession | None, *, now: datetime, after_start: bool = False
) -> Outcome | None:
    """Why a planned message must not go out any more, if it must not. Reminders go before
    the start; a mention of who has not joined goes after it, until the end."""
    if session is None or session.status == SessionStatus.CANCELLED:
        return Outcome(DeliveryStatus.CANCELLED, "the session was cancelled")
    if session.sequence != delivery.sequence:
        return Outcome(DeliveryStatus.CANCELLED, "the session changed after planning")
    if after_start and session.ends_at <= now:
        return Outcome(DeliveryStatus.SKIPPED, "the session is over")
    if not after_start and session.starts_at <= now:
        return Outcome(DeliveryStatus.SKIPPED, "the session had already started")
    return None


def _poisoned(delivery: Job, error: Exception) -> Outcome:
    """An error that this row's own content caused (it would fail again the same way): the
    row fails alone, with the error recorded for the admin; the batch goes on. Database
    errors are not the row's fault and end the batch as before."""
    if isinstance(error, SQLAlchemyError):
        raise error
    log.exception("delivery %s failed", delivery.id)
    return Outcome(DeliveryStatus.FAILED, f"{type(error).__name__}: {error}")


def _send_digests(
    deliveries: list[Job], sessions: dict, rules: dict, *, now: datetime
) -> dict[int, Outcome]:
    """One message per group robot, at most WEBHOOK_RATE_PER_MINUTE a minute per robot; the
    rest wait in the outbox for the window to free, and a throttled robot is left alone
    until the platform's time is up."""
    config = current_app.config
    limit = config["WEBHOOK_RATE_PER_MINUTE"]
    webhooks = {
        w.id: w
        for w in db.session.scalars(
            select(Webhook).where(Webhook.id.in_({d.webhook_id for d in deliveries}))
        )
    }
    window_start = now - timedelta(minutes=1)
    recent = {
        webhook_id: sorted(times)
        for webhook_id, times in _sent_times(list(webhooks), window_start).items()
    }
    outcomes: dict[int, Outcome] = {}
    with WebhookChannel(timeout=config["WEBHOOK_TIMEOUT"]) as channel:
        for delivery in deliveries:
            webhook = webhooks.get(delivery.webhook_id)
            session = sessions.get(delivery.session_id)
            if webhook is None or not webhook.is_active:
                outcomes[delivery.id] = Outcome(DeliveryStatus.CANCELLED, "robot removed")
                continue
            if delivery.kind == DeliveryKind.MENTION:
                gone = _session_gone(delivery, session, now=now, after_start=True)
                absent = [] if gone else absent_members(session, webhook.unit_id)
                if not gone and not absent:
                    gone = Outcome(DeliveryStatus.SKIPPED, "every member has joined")
            else:
                gone = _session_gone(delivery, session, now=now)
                absent = []
            if gone is not None:
                outcomes[delivery.id] = gone
                continue
            if webhook.throttled_until and webhook.throttled_until > now:
                wait = (webhook.throttled_until - now).total_seconds()
                outcomes[delivery.id] = Outcome(
                    DeliveryStatus.PENDING, "robot throttled", retry_after=wait, deferred=True
                )
                continue
            sent = recent.setdefault(webhook.id, [])
            if len(sent) >= limit:
                wait = (sent[-limit] + timedelta(minutes=1) - now).total_seconds()
                outcomes[delivery.id] = Outcome(
                    DeliveryStatus.PENDING, "rate limit", retry_after=max(wait, 1.0), deferred=True
                )
                continue
            minutes = rules[delivery.rule_id].minutes_before if delivery.rule_id in rules else 0
            try:
                if delivery.kind == DeliveryKind.MENTION:
                    text = mention_text(session, absent)
                    mobiles = [mobile_for_robot(user.phone) for user in absent if user.phone]
                else:
                    text, mobiles = digest_text(session, webhook, minutes), []
                channel.send(
                    webhook,
                    text,
                    mobiles=mobiles,
                    now=now,
                    data={
                        "session_id": session.id,
                        "series_id": session.series_id,
                        "starts_at": session.starts_at.isoformat(),
                    },
                )
            except DeliveryError as error:
                if error.retry_after:
                    webhook.throttled_until = now + timedelta(seconds=error.retry_after)
                outcomes[delivery.id] = Outcome(
                    DeliveryStatus.FAILED if error.permanent else DeliveryStatus.PENDING,
                    str(error),
                    error.retry_after,
                    deferred=bool(error.retry_after),
                )
                continue
            except Exception as error:
                outcomes[delivery.id] = _poisoned(delivery, error)
                continue
            sent.append(now)
            outcomes[delivery.id] = Outcome(DeliveryStatus.SENT)
    return outcomes


def _sent_times(webhook_ids: list[int], since: datetime) -> dict[int, list[datetime]]:
    times: dict[int, list[datetime]] = {}
    for webhook_id, sent_at in db.session.execute(
        select(Delivery.webhook_id, Delivery.sent_at).where(
            Delivery.webhook_id.in_(webhook_ids or [-1]),
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at > since,
        )
    ):
        times.setdefault(webhook_id, []).append(sent_at)
    return times


def _check(
    delivery: Job, session: LectureSession | None, enrolled: set, *, now: datetime
) -> Outcome | None:
    """Whether the row should still go out, checked at the last moment."""
    if not delivery.wants_mail:
        return Outcome(DeliveryStatus.SKIPPED, "no email address, or reminders turned off")
    if delivery.kind != DeliveryKind.REMINDER:
        return None
    gone = _session_gone(delivery, session, now=now)
    if gone is not None:
        return gone
    if (delivery.user_id, delivery.series_id) not in enrolled:
        return Outcome(DeliveryStatus.CANCELLED, "no longer enrolled")
    return None


def _send_email(
    delivery: Job, session, rules, email: EmailChannel, cache: dict, *, now: datetime
) -> Outcome:
    language, tz_name = user_language(delivery), user_zone(delivery)
    try:
        if delivery.kind == DeliveryKind.REMINDER:
            minutes = rules[delivery.rule_id].minutes_before if delivery.rule_id in rules else 0
            key = ("reminder", session.id, session.sequence, minutes, language, tz_name)
            if key not in cache:
                cache[key] = render_reminder(session, minutes, language, tz_name, now=now)
            shared = cache[key]
        else:
            series = session.series if session else db.session.get(Series, delivery.series_id)
            shared = render_notice(
                delivery.payload.get("changes", []), session, series, language, tz_name, now=now
            )
        message = personalise(shared, delivery.display_name, delivery.email, delivery.key)
        email.send(delivery.email, message, name=f"{now:%Y%m%dT%H%M%S}-{delivery.id}")
    except DeliveryError as error:
        return Outcome(
            DeliveryStatus.FAILED if error.permanent else DeliveryStatus.PENDING,
            str(error),
            error.retry_after,
        )
    except Exception as error:
        email.close()  # the connection may be mid-message: the next row starts afresh
        return _poisoned(delivery, error)
    return Outcome(DeliveryStatus.SENT)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min … at most an hour between tries."""
    base = current_app.config["DISPATCH_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))


def _record(
    deliveries: list[Delivery], outcomes: dict[int, Outcome], *, worker_id: str, now: datetime
) -> DispatchStats:
    """Write every outcome, only onto rows this worker still holds."""
    stats = DispatchStats(claimed=len(deliveries))
    max_attempts = current_app.config["DISPATCH_MAX_ATTEMPTS"]
    sent_ids = [d.id for d in deliveries if outcomes[d.id].status == DeliveryStatus.SENT]
    mine = and_(Delivery.claimed_by == worker_id, Delivery.status == DeliveryStatus.CLAIMED)
    if sent_ids:
        db.session.execute(
            update(Delivery)
            .where(Delivery.id.in_(sent_ids), mine)
            .values(status=DeliveryStatus.SENT, sent_at=now, last_error=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )
        stats.by_status[DeliveryStatus.SENT] += len(sent_ids)
    for delivery in deliveries:
        outcome = outcomes[delivery.id]
        if outcome.status == DeliveryStatus.SENT:
            continue
        values = {"last_error": (outcome.error or "")[:2000], "lease_until": None}
        status = outcome.status
        if outcome.deferred:
            values["attempts"] = max(delivery.attempts - 1, 0)
            values["due_at"] = now + timedelta(seconds=outcome.retry_after or 60)
        elif status == DeliveryStatus.PENDING:
            if delivery.attempts >= max_attempts:
                status = DeliveryStatus.FAILED
            else:
                wait = (
                    timedelta(seconds=outcome.retry_after)
                    if outcome.retry_after
                    else backoff(delivery.attempts)
                )
                values["due_at"] = now + wait
        values["status"] = status
        db.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, mine)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        stats.by_status[status] += 1
    db.session.commit()
    return stats
