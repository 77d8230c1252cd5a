from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.db import db, utcnow
from webapp.enums import checked_enum
from webapp.people.models import User
from webapp.text import LineText


class ReminderRule(db.Model):
    """Remind participants this many minutes before each session of a series."""

    __tablename__ = "reminder_rule"
    __table_args__ = (
        sa.UniqueConstraint("series_id", "minutes_before", name="uq_reminder_rule_series_minutes"),
        sa.CheckConstraint("minutes_before > 0", name="minutes_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"))
    minutes_before: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderPlan(db.Model):
    """Marks a (session, rule, sequence) whose reminder rows have been written, so the
    planner only adds rows for participants enrolled since."""

    __tablename__ = "reminder_plan"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE"), primary_key=True
    )
    rule_id: Mapped[int] = mapped_column(
        sa.ForeignKey("reminder_rule.id", ondelete="CASCADE"), primary_key=True
    )
    sequence: Mapped[int] = mapped_column(primary_key=True)
    planned_at: Mapped[datetime]


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"  # a group robot: never a personal channel
    SMS = "sms"
    WECOM = "wecom"  # 企业微信 application message to one person
    DINGTALK = "dingtalk"  # 钉钉 work notification to one person


# The channels that reach one person, as an admin may order them.
PERSONAL_CHANNELS = (Channel.WECOM, Channel.DINGTALK, Channel.SMS, Channel.EMAIL)


class DeliveryKind(StrEnum):
    REMINDER = "reminder"  # before a session, to one participant
    NOTICE = "notice"  # something changed (moved, cancelled, enrolled ...), to one participant
    DIGEST = "digest"  # a reminder to a group robot, for a whole unit or series
    MENTION = "mention"  # after the start: @ the unit's members who have not joined yet
    LOGIN = "login"  # a one-time log-in link sent by an organizer or an admin
    EVENT = "event"  # an outgoing webhook: something happened (session.rescheduled ...)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # not needed by design: superseded by a later one, all have joined
    CANCELLED = "cancelled"  # the session moved or was cancelled, or the person left
    MISSED = "missed"  # could not go out in time to be useful (late, or its worker died)
    IN_DOUBT = "in_doubt"  # its worker died while sending it and it is too late to resend


class Delivery(db.Model):
    """One message to send: the outbox row the worker claims, sends and records.

    The unique key makes the same message impossible to create twice; the lease lets
    another worker take over a claim whose worker died."""

    __tablename__ = "delivery"
    __table_args__ = (
        sa.Index("ix_delivery_status_due_at", "status", "due_at"),
        sa.Index("ix_delivery_session_id_status", "session_id", "status"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    kind: Mapped[DeliveryKind] = mapped_column(checked_enum(DeliveryKind, "delivery_kind"))
    channel: Mapped[Channel] = mapped_column(checked_enum(Channel, "channel"))
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    # None: a message about the person's account (a log-in link), not about a series.
    series_id: Mapped[int | None] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE")
    )
    rule_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("reminder_rule.id", ondelete="SET NULL")
    )
    webhook_id: Mapped[int | None] = mapped_column(sa.ForeignKey("webhook.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(default=0)  # the session's, when planned
    payload: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    due_at: Mapped[datetime]
    status: Mapped[DeliveryStatus] = mapped_column(
        checked_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(100))
    lease_until: Mapped[datetime | None]
    # The worker whose lease ran out when this row was taken over, and whether it may have
    # been sending the row at that moment (see dispatch.claim_due).
    taken_from: Mapped[str | None] = mapped_column(sa.String(100))
    taken_while_sending: Mapped[bool] = mapped_column(default=False)
    sent_at: Mapped[datetime | None]
    # Personal messages: the channels tried before this one (comma-separated), and what the
    # provider billed when it was sent (SMS: the number of messages, long ones count twice).
    tried: Mapped[str | None] = mapped_column(sa.String(100))
    cost: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship()


class WebhookKind(StrEnum):
    GENERIC = "generic"  # signed JSON POST
    WECOM = "wecom"  # 企业微信群机器人
    DINGTALK = "dingtalk"  # 钉钉群机器人
    EVENTS = "events"  # an admin's outgoing webhook: signed JSON for each event it wants


class Webhook(db.Model):
    """A group robot or HTTP endpoint that gets one digest per session for a series or unit."""

    __tablename__ = "webhook"
    __table_args__ = (
        # A robot serves one series or one unit; an admin's event webhook serves the site.
        sa.CheckConstraint(
            "(kind = 'events' AND series_id IS NULL AND unit_id IS NULL) OR "
            "(kind <> 'events' AND (series_id IS NOT NULL) <> (unit_id IS NOT NULL))",
            name="scope_by_kind",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(LineText(100))
    kind: Mapped[WebhookKind] = mapped_column(checked_enum(WebhookKind, "webhook_kind"))
    url: Mapped[str] = mapped_column(LineText(1000))
    secret: Mapped[str | None] = mapped_column(sa.String(200))
    series_id: Mapped[int | None] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"))
    unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("unit.id", ondelete="CASCADE"))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Five minutes after a session starts, @-mention the unit's members not yet in it.
    mentions_absent: Mapped[bool] = mapped_column(default=False)
    # An event webhook: the events it is sent (comma-separated: session.created,...).
    events: Mapped[str | None] = mapped_column(sa.String(300))
    # Set when the platform said "too many requests": nothing goes out before then.
    throttled_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerHeartbeat(db.Model):
    """Each worker process writes here every few seconds; admins see who is alive."""

    __tablename__ = "worker_heartbeat"

    worker_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    last_beat_at: Mapped[datetime]
    sent_total: Mapped[int] = mapped_column(default=0)


class NotificationKind(StrEnum):
    ENROLLED = "enrolled"
    PROMOTED = "promoted"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    AGENDA_CHANGED = "agenda_changed"  # a lecture or speaker of a published session changed
    ATTENDANCE = "attendance"  # to an organizer: a session's attendance is final (a summary)


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"  # composed into a delivery
    SKIPPED = "skipped"


class Notification(db.Model):
    """Something a participant must be told; the reminders pipeline delivers it."""

    __tablename__ = "notification"
    __table_args__ = (sa.Index("ix_notification_status_created_at", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("lecture_session.id", ondelete="CASCADE")
    )
    kind: Mapped[NotificationKind] = mapped_column(
        checked_enum(NotificationKind, "notification_kind")
    )
    # What changed, e.g. {"old_starts_at": "...", "new_starts_at": "...", "reason": "..."}.
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    status: Mapped[NotificationStatus] = mapped_column(
        checked_enum(NotificationStatus, "notification_status"),
        default=NotificationStatus.PENDING,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()


class SmsTemplate(db.Model):
    """An approved SMS template (模板) of a provider for one kind of message and language:
    the provider's template code and the names of its parameters, in order."""

    __tablename__ = "sms_template"
    __table_args__ = (
        sa.UniqueConstraint("kind", "language", name="uq_sms_template_kind_language"),
        sa.CheckConstraint("max_param_length > 0", name="max_param_length_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(30))  # see reminders.texts.SMS_KINDS
    language: Mapped[str] = mapped_column(sa.String(10))
    code: Mapped[str] = mapped_column(LineText(50))  # e.g. SMS_154950909 or 1110
    max_param_length: Mapped[int] = mapped_column(default=20)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChannelAccount(db.Model):
    """A person's id on WeCom or DingTalk, found by their mobile number and remembered;
    `external_id` None: the platform said it has nobody with that number (asked again
    after a day, or when the number changes)."""

    __tablename__ = "channel_account"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[Channel] = mapped_column(checked_enum(Channel, "channel"), primary_key=True)
    phone: Mapped[str] = mapped_column(sa.String(20))  # the number it was looked up by
    external_id: Mapped[str | None] = mapped_column(sa.String(64))
    checked_at: Mapped[datetime]
