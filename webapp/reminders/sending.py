"""Sending claimed rows series by series inside the series' fence, in short slices:
rendering (cached per session version, language, zone and wording), email and robots."""

import time
from datetime import datetime, timedelta
from itertools import groupby
from threading import Event

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from webapp.db import db
from webapp.people.models import User
from webapp.reminders.channels import DeliveryError, EmailChannel, WebhookChannel, Withdrawn
from webapp.reminders.decisions import (
    LOST,
    DispatchStats,
    Job,
    Outcome,
    View,
    backoff,
    current_views,
    decide,
    load_rows,
    poisoned,
)
from webapp.reminders.messages import (
    SharedMail,
    digest_text,
    mention_text,
    mobile_for_robot,
    personalise,
    render_notice,
    render_reminder,
    start_words,
    user_language,
)
from webapp.reminders.models import (
    Channel,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Webhook,
)
from webapp.reminders.outbox import (
    release_claims,
)
from webapp.reminders.planning import (
    absent_members,
)
from webapp.series.models import Series
from webapp.sessions.models import Lecture, LectureSession
from webapp.zones import (
    user_zone,
)

# --- sending ---------------------------------------------------------------------------------


class Channels:
    """The open connections of one dispatch run (one SMTP connection, one HTTP session)."""

    def __enter__(self):
        config = current_app.config
        self.email = EmailChannel(
            config["MAIL_URL"],
            sender=config["MAIL_FROM"],
            timeout=config["MAIL_TIMEOUT"],
            ca_file=config["MAIL_CA_FILE"],
        )
        self.robots = WebhookChannel(timeout=config["WEBHOOK_TIMEOUT"])
        return self

    def __exit__(self, *exc_info):
        self.email.close()
        self.robots.close()


class Sender:
    """Sends claimed rows series by series, each inside the series' fence, for at most
    DISPATCH_FENCE_SECONDS at a time (then the fence opens for any change waiting)."""

    def __init__(self, writer, channels: Channels, *, now_fn, stop: Event | None):
        self.writer = writer
        self.channels = channels
        self.now_fn = now_fn
        self.stop = stop
        self.cache: dict[tuple, SharedMail] = {}
        self.fence_seconds = current_app.config["DISPATCH_FENCE_SECONDS"]
        self.mail_down: Outcome | None = None
        self.lost = 0
        self.worker_id = writer.worker_id

    def send_batch(self, rows: list[tuple[int, int]]) -> DispatchStats:
        stats = DispatchStats(claimed=len(rows))
        self.mail_down = None
        for series_id, group in groupby(
            sorted(rows, key=lambda row: (row[1], row[0])), key=lambda row: row[1]
        ):
            remaining = [row_id for row_id, _series in group]
            while remaining:
                with self.writer.series(series_id):
                    remaining = self._send_slice(remaining, stats)
        if self.lost:
            # Rows this worker stopped sending because some were taken over: those still
            # its own go back to the queue (the heartbeat would keep them forever).
            release_claims(self.worker_id)
            db.session.commit()
            self.lost = 0
        return stats

    def _send_slice(self, ids: list[int], stats: DispatchStats) -> list[int]:
        """Send rows of one series under its fence, for at most the fence time; return the
        ids left for the next slice. What the rows are checked against is read here, after
        the fence was entered."""
        jobs, views = load_rows(ids)
        robots = {job.webhook_id for job in jobs if job.webhook_id}
        state = SliceState(views, now=self.now_fn(), webhook_ids=robots)
        ends = time.monotonic() + self.fence_seconds
        for index, job in enumerate(jobs):
            if time.monotonic() >= ends:
                return [later.id for later in jobs[index:]]
            if self.stop is not None and self.stop.is_set():
                outcome = Outcome(DeliveryStatus.PENDING, "worker stopping", 0.0, deferred=True)
            else:
                outcome = self._handle(job, state)
            if outcome is LOST:
                self.lost += 1
            else:
                stats.by_status[self.writer.record(job, outcome, now=self.now_fn())] += 1
        return []

    def _handle(self, job: Job, state: "SliceState") -> Outcome:
        now = self.now_fn()
        try:
            outcome = decide(job, state.views[job.id], now=now)
            if outcome is None and job.channel == Channel.WEBHOOK:
                outcome = state.robot_check(job, now=now)
            if outcome is not None:
                return outcome
            if job.channel == Channel.EMAIL and self.mail_down is not None:
                return self.mail_down
            message = self._prepare(job, state, now=now)
        except Exception as error:
            return poisoned(job, error)
        outcome = self.writer.begin_send(job, lambda: self._recheck(job, now=self.now_fn()))
        if outcome is not None:
            return outcome
        if job.channel == Channel.EMAIL:
            return self._send_email(job, state, message)
        return self._post(job, state, message, now=now)

    def _recheck(self, job: Job, *, now: datetime) -> Outcome | None:
        return decide(job, current_views([job])[job.id], now=now)

    def _prepare(self, job: Job, state: "SliceState", *, now: datetime):
        if job.channel == Channel.WEBHOOK:
            session = state.session(job.session_id)
            webhook = state.webhooks[job.webhook_id]
            if job.kind == DeliveryKind.MENTION:
                absent = state.absent[job.id]
                mobiles = [mobile_for_robot(user.phone) for user in absent if user.phone]
                return mention_text(session, absent), mobiles
            return digest_text(session, webhook, now=now), []
        view = state.views[job.id]
        language, tz_name = user_language(view), user_zone(view)
        if job.kind == DeliveryKind.REMINDER:
            # Rendered once per session version, language, zone and wording of the start.
            words = start_words(view.starts_at, language, tz_name, now=now)
            key = (job.session_id, view.session_sequence, view.session_updated_at)
            key += (language, tz_name, words)
            if key not in self.cache:
                session = state.session(job.session_id)
                self.cache[key] = render_reminder(session, language, tz_name, now=now)
            shared = self.cache[key]
        else:
            session = state.session(job.session_id) if job.session_id else None
            series = session.series if session else db.session.get(Series, job.series_id)
            shared = render_notice(
                job.payload.get("changes", []), session, series, language, tz_name, now=now
            )
        return personalise(shared, view.display_name, view.email, job.key)

    def _send_email(self, job: Job, state: "SliceState", message: bytes) -> Outcome:
        email = self.channels.email
        now = self.now_fn()
        try:
            email.send(
                state.views[job.id].email,
                message,
                name=f"{now:%Y%m%dT%H%M%S}-{job.id}",
                before_body=self.writer.ready,
            )
        except Withdrawn:
            return LOST
        except DeliveryError as error:
            outcome = Outcome(
                DeliveryStatus.FAILED if error.permanent else DeliveryStatus.PENDING,
                str(error),
                error.retry_after,
            )
            if error.unreachable:
                # The rest of this batch's mail waits for the server without using a try.
                self.mail_down = Outcome(
                    DeliveryStatus.PENDING,
                    str(error),
                    backoff(1).total_seconds(),
                    deferred=True,
                )
            return outcome
        return Outcome(DeliveryStatus.SENT)

    def _post(self, job: Job, state: "SliceState", message, *, now: datetime) -> Outcome:
        text, mobiles = message
        webhook = state.webhooks[job.webhook_id]
        view = state.views[job.id]
        try:
            self.channels.robots.send(
                webhook,
                text,
                mobiles=mobiles,
                now=now,
                data={
                    "session_id": job.session_id,
                    "series_id": job.series_id,
                    "starts_at": view.starts_at.isoformat(),
                },
                before_request=self.writer.ready,
            )
        except Withdrawn:
            return LOST
        except DeliveryError as error:
            if error.retry_after:
                webhook.throttled_until = now + timedelta(seconds=error.retry_after)
            return Outcome(
                DeliveryStatus.FAILED if error.permanent else DeliveryStatus.PENDING,
                str(error),
                error.retry_after,
                deferred=bool(error.retry_after),
            )
        except Exception as error:
            return poisoned(job, error)
        state.robot_sent(webhook.id, now)
        return Outcome(DeliveryStatus.SENT)


class SliceState:
    """What the rows of one slice are checked against, read inside the fence (their views),
    and what is loaded only when needed: the sessions to render (with lectures and
    speakers), robots and their sending windows."""

    def __init__(self, views: dict[int, View], *, now: datetime, webhook_ids: set[int]):
        self.views = views
        self.now = now
        self.webhook_ids = webhook_ids
        self._sessions: dict[int, LectureSession] = {}
        self._webhooks: dict[int, Webhook] | None = None
        self.recent: dict[int, list[datetime]] = {}
        self.absent: dict[int, list[User]] = {}

    def session(self, session_id: int) -> LectureSession:
        if session_id not in self._sessions:
            self._sessions[session_id] = db.session.scalars(
                select(LectureSession)
                .where(LectureSession.id == session_id)
                .options(
                    selectinload(LectureSession.series),
                    selectinload(LectureSession.lectures).selectinload(Lecture.speakers),
                )
            ).one()
        return self._sessions[session_id]

    @property
    def webhooks(self) -> dict[int, Webhook]:
        if self._webhooks is None:
            self._webhooks = {
                webhook.id: webhook
                for webhook in db.session.scalars(
                    select(Webhook).where(Webhook.id.in_(self.webhook_ids))
                )
            }
            window_start = self.now - timedelta(minutes=1)
            self.recent = _sent_times(list(self._webhooks), window_start)
        return self._webhooks

    def robot_check(self, job: Job, *, now: datetime) -> Outcome | None:
        """A robot's own reasons to wait or not to send: removed, nobody absent, throttled
        by the platform, or at its limit of WEBHOOK_RATE_PER_MINUTE."""
        webhook = self.webhooks.get(job.webhook_id)
        if webhook is None or not webhook.is_active:
            return Outcome(DeliveryStatus.CANCELLED, "robot removed")
        if job.kind == DeliveryKind.MENTION:
            absent = absent_members(self.session(job.session_id), webhook.unit_id)
            if not absent:
                return Outcome(DeliveryStatus.SKIPPED, "every member has joined")
            self.absent[job.id] = absent
        if webhook.throttled_until and webhook.throttled_until > now:
            wait = (webhook.throttled_until - now).total_seconds()
            return Outcome(DeliveryStatus.PENDING, "robot throttled", wait, deferred=True)
        limit = current_app.config["WEBHOOK_RATE_PER_MINUTE"]
        sent = sorted(self.recent.setdefault(webhook.id, []))
        if len(sent) >= limit:
            wait = (sent[-limit] + timedelta(minutes=1) - now).total_seconds()
            return Outcome(DeliveryStatus.PENDING, "rate limit", max(wait, 1.0), deferred=True)
        return None

    def robot_sent(self, webhook_id: int, now: datetime) -> None:
        self.recent.setdefault(webhook_id, []).append(now)


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
