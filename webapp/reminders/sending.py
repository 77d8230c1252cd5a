"""Sending claimed rows series by series inside the series' fence, in short slices:
rendering (cached per session version, language, zone and wording), the personal channels
(email, SMS, WeCom, DingTalk, each person's first that works) and robots."""

import logging
import time
from datetime import UTC, datetime, timedelta
from itertools import groupby
from threading import Event

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload

from webapp.db import db
from webapp.people.logins import issue_login_token
from webapp.people.models import LoginCode, User
from webapp.reminders.channels import (
    DeliveryError,
    EmailChannel,
    RobotMessage,
    WebhookChannel,
    Withdrawn,
    sink_folder,
)
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
    render_login_mail,
    render_notice,
    render_reminder,
    start_words,
    user_language,
)
from webapp.reminders.models import (
    Channel,
    ChannelAccount,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Webhook,
    WebhookKind,
    WorkerHeartbeat,
)
from webapp.reminders.outbox import (
    release_claims,
    sms_sent_today,
)
from webapp.reminders.personal import (
    AliyunSms,
    DingTalkMessenger,
    GatewaySms,
    Receipt,
    Sink,
    TencentSms,
    UnknownPerson,
    WeComMessenger,
)
from webapp.reminders.planning import (
    absent_members,
)
from webapp.reminders.reach import Contact, channel_order, channels_for, not_found_by_user
from webapp.reminders.texts import (
    login_link_text,
    notice_sms,
    notice_text,
    reminder_sms,
    reminder_text,
    sms_content,
    templates_by_kind,
)
from webapp.series.models import Series
from webapp.sessions.models import Lecture, LectureSession
from webapp.urls import public_url
from webapp.zones import (
    day_start,
    user_zone,
)

log = logging.getLogger(__name__)


class Stopped(Exception):  # noqa: N818 (not an error: the last-moment check said no)
    """The last-moment check before sending said the message must not go (its outcome)."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.error)
        self.outcome = outcome


def open_personal(channel: Channel, config):
    """A personal channel as configured: the sink, or the platform's API client."""
    folder = sink_folder(config["MAIL_URL"], current_app.instance_path)
    if channel == Channel.SMS:
        provider, sign = config["SMS_PROVIDER"], config["SMS_SIGN_NAME"]
        classes = {"aliyun": AliyunSms, "tencent": TencentSms, "gateway": GatewaySms}
        if provider == "sink":
            return Sink("sms", folder, sign_name=sign)
        if provider in classes:
            return classes[provider](config, sign_name=sign)
    elif channel == Channel.WECOM:
        return (
            Sink("wecom", folder) if config["WECOM_CORP_ID"] == "sink" else WeComMessenger(config)
        )
    elif channel == Channel.DINGTALK:
        if config["DINGTALK_APP_KEY"] == "sink":
            return Sink("dingtalk", folder)
        return DingTalkMessenger(config)
    raise DeliveryError(f"{channel.value} is not configured", permanent=True)


class Pacer:
    """At most `rate` sends a second from this worker, evenly spaced (a shared limit is
    divided among the live workers)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = max(self.next_at, now) + self.interval


# --- sending ---------------------------------------------------------------------------------


class Channels:
    """The open connections of one dispatch run (one SMTP connection, one HTTP session per
    platform); the personal channels are opened when first needed."""

    def __enter__(self):
        config = current_app.config
        self.config = config
        self.email = EmailChannel(
            config["MAIL_URL"],
            sender=config["MAIL_FROM"],
            timeout=config["MAIL_TIMEOUT"],
            ca_file=config["MAIL_CA_FILE"],
        )
        self.robots = WebhookChannel(timeout=config["WEBHOOK_TIMEOUT"])
        self.personal: dict[Channel, object] = {}
        return self

    def get(self, channel: Channel):
        """The open channel; DeliveryError when it is not configured properly."""
        if channel == Channel.EMAIL:
            return self.email
        if channel not in self.personal:
            self.personal[channel] = open_personal(channel, self.config)
        return self.personal[channel]

    def __exit__(self, *exc_info):
        self.email.close()
        self.robots.close()
        for channel in self.personal.values():
            channel.close()


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
        self.order = channel_order()
        self.templates = templates_by_kind() if Channel.SMS in self.order else {}
        self.sms_rate = Pacer(current_app.config["SMS_PER_SECOND"] / _live_workers())
        self.sms_day = SmsDay()

    def send_batch(self, rows: list[tuple[int, int]]) -> DispatchStats:
        stats = DispatchStats(claimed=len(rows))
        self.mail_down = None
        for series_id, group in groupby(
            sorted(rows, key=lambda row: (row[1] or 0, row[0])), key=lambda row: row[1] or 0
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
        state.personal(jobs, self.order, self.templates, self.cache, self.sms_day)
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
            if job.channel != Channel.WEBHOOK:
                return self._send_personal(job, state, now=now)
            message = self._prepare(job, state, now=now)
        except Exception as error:
            return poisoned(job, error)
        outcome = self.writer.begin_send(job, lambda: self._recheck(job, now=self.now_fn()))
        if outcome is not None:
            return outcome
        return self._post(job, state, message, now=now)

    def _send_personal(self, job: Job, state: "SliceState", *, now: datetime) -> Outcome:
        """Send on the first of the person's channels that works, in the admin's order:
        a refusal on one falls through to the next for this message, once each. Channels
        that refused for good are remembered on the row and not tried again."""
        view = state.views[job.id]
        refused = [Channel(name) for name in (job.tried or "").split(",") if name]
        channels, reason = channels_for(
            state.contact(job, view),
            state.order,
            job.kind,
            late_change=bool(job.payload.get("late_change")),
        )
        channels = [channel for channel in channels if channel not in refused]
        if job.payload.get("only"):  # e.g. "forgot password" asked for the email address
            channels = [channel for channel in channels if channel.value == job.payload["only"]]
        if not channels:
            if refused:
                return Outcome(
                    DeliveryStatus.FAILED,
                    "every channel refused it",
                    channel=refused[-1],
                    tried=",".join(refused),
                )
            return Outcome(DeliveryStatus.SKIPPED, reason)
        errors, waits = [], []
        for channel in channels:
            if channel == Channel.EMAIL and self.mail_down is not None:
                errors.append(f"email: {self.mail_down.error}")
                waits.append(self.mail_down.retry_after or 60)
                continue
            try:
                receipt = self._send_on(channel, job, state, now=now)
            except Withdrawn:
                return LOST
            except DeliveryError as error:
                errors.append(f"{channel.value}: {error}")
                if error.permanent:
                    refused.append(channel)
                else:
                    waits.append(error.retry_after or backoff(job.attempts).total_seconds())
                if error.unreachable and channel == Channel.EMAIL:
                    self.mail_down = Outcome(
                        DeliveryStatus.PENDING, str(error), backoff(1).total_seconds()
                    )
                continue
            except Stopped as stop:
                return stop.outcome
            except Exception as error:
                if isinstance(error, SQLAlchemyError):
                    raise
                log.exception("delivery %s failed on %s", job.id, channel.value)
                errors.append(f"{channel.value}: {type(error).__name__}: {error}")
                refused.append(channel)
                continue
            return Outcome(
                DeliveryStatus.SENT,
                "; ".join(errors) or None,
                channel=channel,
                tried=",".join(refused) or None,
                cost=receipt.cost,
            )
        tried = ",".join(refused) or None
        if not waits:
            return Outcome(
                DeliveryStatus.FAILED, "; ".join(errors), channel=channels[-1], tried=tried
            )
        # Some channel may work later (throttled, unreachable): tried again after a while.
        return Outcome(
            DeliveryStatus.PENDING,
            "; ".join(errors),
            min(waits),
            channel=channels[0],
            tried=tried,
        )

    def _send_on(self, channel: Channel, job: Job, state: "SliceState", *, now: datetime):
        """Send the message on one channel (DeliveryError if it refuses); the Receipt."""
        opened = self.channels.get(channel)
        view = state.views[job.id]
        # The last-moment check first: its write goes out while the message is prepared.
        stop = self.writer.begin_send(job, lambda: self._recheck(job, now=self.now_fn()))
        if stop is not None:
            raise Stopped(stop)
        if channel == Channel.EMAIL and job.kind == DeliveryKind.LOGIN:
            message = self._prepare_login(job, state, now=now)
            to = view.email
        elif channel == Channel.EMAIL:
            message = self._prepare(job, state, now=now)
            to = view.email
        elif channel == Channel.SMS:
            state.check_sms_limits(job.user_id)
            message = state.sms(job, now=now)
            to = view.phone
        else:
            to = state.account(channel, job.user_id, view.phone, opened, now=now)
            message = state.text(job, now=now)
        if channel == Channel.SMS:
            self.sms_rate.wait()
        try:
            receipt = opened.send(
                to,
                message,
                key=job.key if channel != Channel.EMAIL else f"{now:%Y%m%dT%H%M%S}-{job.id}",
                before_send=self.writer.ready,
            )
        except UnknownPerson:
            state.forget_account(channel, job.user_id, view.phone, now=now)
            raise
        if channel == Channel.SMS:
            state.sms_sent(job.user_id)
        return receipt or Receipt()

    def _recheck(self, job: Job, *, now: datetime) -> Outcome | None:
        return decide(job, current_views([job])[job.id], now=now)

    def _prepare(self, job: Job, state: "SliceState", *, now: datetime):
        if job.kind == DeliveryKind.EVENT:
            return "", []  # the event goes as it was recorded (job.payload["event"])
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

    def _prepare_login(self, job: Job, state: "SliceState", *, now: datetime):
        view = state.views[job.id]
        return personalise(
            render_login_mail(
                view.display_name, state.login_link(job), user_language(view), now=now
            ),
            view.display_name,
            view.email,
            job.key,
        )

    def _post(self, job: Job, state: "SliceState", message, *, now: datetime) -> Outcome:
        text, mobiles = message
        webhook = state.webhooks[job.webhook_id]
        view = state.views[job.id]
        if job.kind == DeliveryKind.EVENT:
            data = job.payload["event"]
        else:
            data = {
                "session_id": job.session_id,
                "series_id": job.series_id,
                "starts_at": view.starts_at.isoformat(),
            }
        try:
            self.channels.robots.send(
                webhook,
                RobotMessage(text, mobiles=mobiles, now=now, data=data),
                key=job.key,
                before_send=self.writer.ready,
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


class SmsDay:
    """SMS sent today by everyone, for the daily limit: counted from the outbox once per
    dispatch run (and day), then this worker adds its own sends (other workers' sends of
    the same run show in the next run: the limit may be passed by one run's worth)."""

    def __init__(self):
        self.day: datetime | None = None
        self.counted = 0
        self.sent = 0

    def total(self, now: datetime) -> int:
        since = day_start(now, current_app.config["DEFAULT_TIMEZONE"])
        if self.day != since:
            self.day, self.sent = since, 0
            self.counted = int(
                db.session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(
                        Delivery.channel == Channel.SMS,
                        Delivery.status == DeliveryStatus.SENT,
                        Delivery.sent_at >= since,
                    )
                )
                or 0
            ) + int(
                db.session.scalar(
                    select(func.count())
                    .select_from(LoginCode)
                    .where(LoginCode.sent.is_(True), LoginCode.created_at >= since)
                )
                or 0
            )
        return self.counted + self.sent


def _live_workers() -> int:
    lease = timedelta(seconds=current_app.config["DISPATCH_LEASE_SECONDS"])
    since = datetime.now(UTC) - lease
    count = db.session.scalar(
        select(func.count())
        .select_from(WorkerHeartbeat)
        .where(WorkerHeartbeat.last_beat_at > since)
    )
    return max(int(count or 0), 1)


class SliceState:
    """What the rows of one slice are checked against, read inside the fence (their views),
    and what is loaded only when needed: the sessions to render (with lectures and
    speakers), robots and their sending windows, people's ids on WeCom and DingTalk, the
    SMS already sent today."""

    def personal(self, jobs: list[Job], order, templates, cache, sms_day: "SmsDay") -> None:
        self.sms_day = sms_day
        self.order = order
        self.templates = templates
        self.text_cache = cache
        self.user_ids = {job.user_id for job in jobs if job.user_id}
        self.jobs_by_id = {job.id: job for job in jobs}
        self._not_found = None
        self._accounts = None
        self._sms_today = None
        self._links: dict[int, str] = {}

    def contact(self, job: Job, view: View) -> Contact:
        if self._not_found is None:
            wanted = {Channel.WECOM, Channel.DINGTALK} & set(self.order)
            self._not_found = not_found_by_user(self.user_ids, now=self.now) if wanted else {}
        return Contact(
            is_active=view.is_active,
            email=view.email,
            phone=view.phone,
            email_reminders=view.email_reminders,
            muted_channels=view.muted_channels,
            not_found=self._not_found.get(job.user_id, frozenset()),
        )

    # SMS limits: per number per day (sign-in codes count too), and all numbers per day.
    def check_sms_limits(self, user_id: int) -> None:
        config = current_app.config
        if self._sms_today is None:
            self._load_sms_today()
        if self.sms_day.total(self.now) >= config["SMS_PER_DAY"]:
            raise DeliveryError("the daily SMS limit is reached", permanent=True)
        if self._sms_today.get(user_id, 0) >= config["SMS_PER_NUMBER_PER_DAY"]:
            raise DeliveryError("this number's daily SMS limit is reached", permanent=True)

    def _load_sms_today(self) -> None:
        since = day_start(self.now, current_app.config["DEFAULT_TIMEZONE"])
        self._sms_today = sms_sent_today(self.user_ids, since=since)

    def sms_sent(self, user_id: int) -> None:
        self._sms_today[user_id] = self._sms_today.get(user_id, 0) + 1
        self.sms_day.sent += 1

    def sms(self, job: Job, *, now: datetime):
        view = self.views[job.id]
        language, tz_name = user_language(view), user_zone(view)
        if job.kind == DeliveryKind.LOGIN:
            return sms_content(
                "login_link",
                {"name": view.display_name, "link": self.login_link(job)},
                language,
                self.templates,
            )
        if job.kind == DeliveryKind.REMINDER:
            key = ("sms", job.session_id, view.session_sequence, view.session_updated_at)
            key += (language, tz_name, start_words(view.starts_at, language, tz_name, now=now))
            if key not in self.text_cache:
                self.text_cache[key] = reminder_sms(
                    self.session(job.session_id), language, tz_name, self.templates, now=now
                )
            return self.text_cache[key]
        session, series = self._session_and_series(job)
        return notice_sms(
            job.payload.get("changes", []), session, series, language, tz_name, self.templates
        )

    def text(self, job: Job, *, now: datetime) -> str:
        view = self.views[job.id]
        language, tz_name = user_language(view), user_zone(view)
        if job.kind == DeliveryKind.LOGIN:
            return login_link_text(view.display_name, self.login_link(job), language)
        if job.kind == DeliveryKind.REMINDER:
            return reminder_text(self.session(job.session_id), language, tz_name, now=now)
        session, series = self._session_and_series(job)
        return notice_text(job.payload.get("changes", []), session, series, language, tz_name)

    def _session_and_series(self, job: Job):
        session = self.session(job.session_id) if job.session_id else None
        series = session.series if session else db.session.get(Series, job.series_id)
        return session, series

    def login_link(self, job: Job) -> str:
        """A fresh one-time log-in link, made when it is sent (the outbox holds no secret);
        made once per message, whichever channel carries it."""
        if job.id not in self._links:
            user = db.session.get(User, job.user_id)
            token = issue_login_token(user, now=self.now)
            self._links[job.id] = public_url("auth.login_link", token=token)
        return self._links[job.id]

    # WeCom and DingTalk ids, found by mobile number and remembered.
    def account(self, channel: Channel, user_id: int, phone: str, opened, *, now: datetime):
        if self._accounts is None:
            self._accounts = {
                (row.user_id, row.channel): row
                for row in db.session.scalars(
                    select(ChannelAccount).where(
                        ChannelAccount.user_id.in_(list(self.user_ids) or [-1])
                    )
                )
            }
        row = self._accounts.get((user_id, channel))
        if row is not None and row.phone == phone and row.external_id:
            return row.external_id
        try:
            external_id = opened.find(phone)
        except UnknownPerson:
            self.forget_account(channel, user_id, phone, now=now)
            raise
        self._remember(channel, user_id, phone, external_id, now=now)
        return external_id

    def forget_account(self, channel: Channel, user_id: int, phone: str, *, now: datetime):
        self._remember(channel, user_id, phone, None, now=now)

    def _remember(self, channel, user_id, phone, external_id, *, now: datetime) -> None:
        if self._accounts is None:
            self._accounts = {}
        row = self._accounts.get((user_id, channel)) or db.session.get(
            ChannelAccount, (user_id, channel)
        )
        if row is None:
            row = ChannelAccount(user_id=user_id, channel=channel)
            db.session.add(row)
        row.phone, row.external_id, row.checked_at = phone, external_id, now
        self._accounts[(user_id, channel)] = row
        db.session.flush()

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
        if webhook.kind == WebhookKind.EVENTS:
            return None  # another system, not a group chat: no per-minute limit of ours
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
