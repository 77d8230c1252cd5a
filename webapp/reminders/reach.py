"""Who can be reached, and how: the personal channels the admin turned on, in the admin's
order, narrowed by each person (通知设置) and by what is known of them (a mobile number,
an email address, an id on WeCom or DingTalk). Decided here and nowhere else: the planner,
the notice composer, the sender and the organizer's "who will be told" all ask this."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import select

from webapp import settings
from webapp.db import db
from webapp.people.models import User
from webapp.reminders.audience import wants_mail
from webapp.reminders.models import (
    PERSONAL_CHANNELS,
    Channel,
    ChannelAccount,
    DeliveryKind,
    WorkerHeartbeat,
)
from webapp.series.models import Enrollment, EnrollmentStatus

# A "nobody with this number" answer from WeCom or DingTalk is trusted this long.
NOT_FOUND_TRUSTED = timedelta(days=1)

CHANNEL_NAMES = {
    Channel.WECOM: _l("WeCom"),
    Channel.DINGTALK: _l("DingTalk"),
    Channel.SMS: _l("SMS"),
    Channel.EMAIL: _l("email"),
}

# Why a person cannot be reached (stored on the skipped row, shown to organizers).
INACTIVE = "account deactivated"
NO_ADDRESS = "no mobile number or email address"
TURNED_OFF = "turned off by the person"
NO_CHANNEL = "no channel reaches this person"

REASONS = {
    INACTIVE: _l("account deactivated"),
    NO_ADDRESS: _l("no mobile number or email address"),
    TURNED_OFF: _l("turned off notifications"),
    NO_CHANNEL: _l("no channel reaches this person"),
}


def channel_configured(channel: Channel, config) -> bool:
    if channel == Channel.EMAIL:
        return bool(config["MAIL_URL"])
    if channel == Channel.SMS:
        return config["SMS_PROVIDER"] in ("sink", "aliyun", "tencent", "gateway")
    if channel == Channel.WECOM:
        return bool(config["WECOM_CORP_ID"])
    if channel == Channel.DINGTALK:
        return bool(config["DINGTALK_APP_KEY"])
    return False


def channel_order(config=None) -> tuple[Channel, ...]:
    """The personal channels turned on, in the admin's order (saved on the settings page,
    else CHANNEL_ORDER)."""
    config = config or current_app.config
    order = []
    for name in settings.value("channel_order", config).split(","):
        name = name.strip().lower()
        if name in PERSONAL_CHANNELS and Channel(name) not in order:
            channel = Channel(name)
            if channel_configured(channel, config):
                order.append(channel)
    return tuple(order)


def muted(value: str | None) -> frozenset[str]:
    return frozenset(part for part in (value or "").split(",") if part)


@dataclass(frozen=True)
class Contact:
    """What the reach of one person depends on."""

    is_active: bool | None
    email: str | None
    phone: str | None
    email_reminders: bool | None
    muted_channels: str | None
    not_found: frozenset[Channel] = frozenset()  # platforms that said "nobody by this number"


def channels_for(
    contact: Contact,
    order: tuple[Channel, ...],
    kind: DeliveryKind,
    *,
    late_change: bool = False,
) -> tuple[list[Channel], str | None]:
    """The channels to try for one message, first to last, or none and why.

    A log-in link asked for by an organizer goes whatever the person turned off; a late
    change goes by mail even to those who turned mail off (see audience.wants_mail)."""
    if not contact.is_active:
        return [], INACTIVE
    if not (contact.email or contact.phone):
        return [], NO_ADDRESS
    off = muted(contact.muted_channels) if kind != DeliveryKind.LOGIN else frozenset()
    channels, turned_off = [], False
    for channel in order:
        if channel == Channel.EMAIL:
            if kind == DeliveryKind.LOGIN:
                wants = bool(contact.email)
            else:
                wants = wants_mail(
                    kind,
                    is_active=contact.is_active,
                    email=contact.email,
                    email_reminders=contact.email_reminders,
                    late_change=late_change,
                )
                turned_off |= bool(contact.email) and not wants
            if wants:
                channels.append(channel)
        elif not contact.phone or channel in contact.not_found:
            continue
        elif channel.value in off:
            turned_off = True
        else:
            channels.append(channel)
    if channels:
        return channels, None
    return [], TURNED_OFF if turned_off else NO_CHANNEL


def not_found_by_user(user_ids, *, now: datetime) -> dict[int, frozenset[Channel]]:
    """The platforms that said recently that they have nobody with each person's number."""
    return _accounts_by_user(
        user_ids,
        ChannelAccount.external_id.is_(None),
        ChannelAccount.checked_at > now - NOT_FOUND_TRUSTED,
    )


def known_ids_by_user(user_ids) -> dict[int, frozenset[Channel]]:
    """The platforms that know each person (an id found by their current number)."""
    return _accounts_by_user(user_ids, ChannelAccount.external_id.is_not(None))


def _accounts_by_user(user_ids, *conditions) -> dict[int, frozenset[Channel]]:
    """Per person, the platforms whose answer about their current number meets the
    conditions (1,000 people a query)."""
    found: dict[int, set[Channel]] = {}
    ids = list(user_ids)
    for start in range(0, len(ids), 1000):
        for user_id, channel in db.session.execute(
            select(ChannelAccount.user_id, ChannelAccount.channel)
            .join(User, User.id == ChannelAccount.user_id)
            .where(
                ChannelAccount.user_id.in_(ids[start : start + 1000]),
                ChannelAccount.phone == User.phone,
                *conditions,
            )
        ):
            found.setdefault(user_id, set()).add(channel)
    return {user_id: frozenset(channels) for user_id, channels in found.items()}


def contact_of(user: User, not_found: frozenset[Channel] = frozenset()) -> Contact:
    return Contact(
        is_active=user.is_active,
        email=user.email,
        phone=user.phone,
        email_reminders=user.email_reminders,
        muted_channels=user.muted_channels,
        not_found=not_found,
    )


@dataclass
class Reach:
    """How many of a group will be told, by which channel first, and who cannot be."""

    total: int
    by_channel: Counter
    unreachable: list[tuple[User, str]]

    @property
    def reached(self) -> int:
        return sum(self.by_channel.values())


def reach_of(users: list[User], kind: DeliveryKind, *, now: datetime) -> Reach:
    """The organizer's "64 enrolled: 58 will be told (WeCom 40, SMS 15, email 3)". A person
    is counted under WeCom or DingTalk only when the platform knows them already (their id
    was found by their number); someone not looked up yet is counted under the next
    channel, which takes the message if the platform does not know them."""
    order = channel_order()
    not_found = not_found_by_user([user.id for user in users], now=now)
    known = known_ids_by_user([user.id for user in users])
    by_channel: Counter = Counter()
    unreachable = []
    for user in users:
        channels, reason = channels_for(
            contact_of(user, not_found.get(user.id, frozenset())), order, kind
        )
        if not channels:
            unreachable.append((user, reason))
            continue
        certain = [
            channel
            for channel in channels
            if channel not in LOOKED_UP or channel in known.get(user.id, ())
        ]
        by_channel[(certain or channels)[0]] += 1
    return Reach(len(users), by_channel, unreachable)


LOOKED_UP = (Channel.WECOM, Channel.DINGTALK)


def channels_of_users(users: list[User], *, now: datetime) -> dict[int, list[Channel]]:
    """Each person's channels for reminders, in the order they are tried."""
    order = channel_order()
    not_found = not_found_by_user([user.id for user in users], now=now)
    return {
        user.id: channels_for(
            contact_of(user, not_found.get(user.id, frozenset())), order, DeliveryKind.REMINDER
        )[0]
        for user in users
    }


def reach_display(users: list[User], *, now: datetime) -> dict[int, list[tuple[Channel, bool]]]:
    """For the pages: each person's channels in the order they are tried, each with whether
    it is sure to know them (False: WeCom or DingTalk has not been asked about them yet)."""
    known = known_ids_by_user([user.id for user in users])
    return {
        user_id: [
            (channel, channel not in LOOKED_UP or channel in known.get(user_id, ()))
            for channel in channels
        ]
        for user_id, channels in channels_of_users(users, now=now).items()
    }


def enrolled_reach(series_id: int, kind: DeliveryKind, *, now: datetime) -> Reach:
    """The reach of a series' enrolled participants (publishing, moving, cancelling)."""
    users = list(
        db.session.scalars(
            select(User)
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(
                Enrollment.series_id == series_id,
                Enrollment.status == EnrollmentStatus.ENROLLED,
            )
            .order_by(User.display_name, User.id)
        )
    )
    return reach_of(users, kind, now=now)


def worker_alive(*, now: datetime) -> bool:
    """Whether some message worker has beaten recently: without one nothing is sent."""
    lease = timedelta(seconds=current_app.config["DISPATCH_LEASE_SECONDS"])
    return (
        db.session.scalar(
            select(WorkerHeartbeat.worker_id).where(WorkerHeartbeat.last_beat_at > now - lease)
        )
        is not None
    )


def reach_sentence(reach: Reach, *, now: datetime) -> str:
    """ "58 of 64 participants will be told (WeCom 40, SMS 15, email 3); 6 cannot be
    reached." — only what will happen, and a warning when no worker runs."""
    parts = _(", ").join(
        f"{CHANNEL_NAMES[channel]} {count}"
        for channel, count in sorted(
            reach.by_channel.items(), key=lambda item: (-item[1], PERSONAL_CHANNELS.index(item[0]))
        )
    )
    if reach.total == 0:
        return _("Nobody is enrolled, so nobody is told.")
    text = ngettext(
        "%(reached)d of %(num)d participant will be told",
        "%(reached)d of %(num)d participants will be told",
        reach.total,
        reached=reach.reached,
    )
    if parts:
        text = _("%(told)s (%(channels)s)", told=text, channels=parts)
    if reach.unreachable:
        text += _("; %(count)d cannot be reached.", count=len(reach.unreachable))
    else:
        text += _(".")
    if reach.reached and not worker_alive(now=now):
        text += " " + _("The message worker is not running: nothing is sent until it starts.")
    return text
