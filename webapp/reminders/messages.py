"""Email messages for reminders and notices, in each participant's language and time zone.

What is shared by many recipients (one session, one rule, one language, one zone) is
rendered once into MIME bytes; each recipient only adds their own To and Message-ID."""

import re
from base64 import b64encode
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from functools import lru_cache

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _

from webapp.calendar.ical import calendar_host, session_calendar, session_summary
from webapp.i18n import (
    format_start,
    format_time_range,
    format_until,
)
from webapp.reminders.channels import PLAIN_ADDRESS
from webapp.reminders.outbox import (
    enrolled_in_scope,
)
from webapp.series.models import Series
from webapp.sessions.models import LectureSession
from webapp.text import clean_line
from webapp.urls import public_url
from webapp.zones import (
    zone,
)


@dataclass(frozen=True)
class SharedMail:
    """A rendered message without its recipient: headers and body as bytes."""

    body: bytes


def user_language(user) -> str:
    """The language to write to a user (or any object with .locale) in."""
    languages = current_app.config["LANGUAGES"]
    return user.locale if user.locale in languages else current_app.config["DEFAULT_LOCALE"]


def _urls(session: LectureSession | None, series: Series) -> dict[str, str]:
    urls = {
        "series_url": public_url("series.detail", series_id=series.id),
        "settings_url": public_url("reminders.preferences"),
    }
    if session is not None:
        urls["join_url"] = public_url("sessions.detail", session_id=session.id)
    return urls


def _sender() -> str:
    return current_app.config["MAIL_FROM"]


def _build(
    subject: str, text: str, html: str, ics: bytes | None, method: str | None, *, now: datetime
) -> SharedMail:
    message = EmailMessage(policy=SMTP)
    # Header values are built by the email package's header registry (folded and RFC 2047
    # encoded by the policy); a line break can never reach a header, whatever the text.
    message["Subject"] = clean_line(subject)
    message["From"] = _sender()
    message["Date"] = format_datetime(now)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    if ics is not None:
        message.add_attachment(
            ics,
            maintype="text",
            subtype="calendar",
            filename="invite.ics",
            params={"method": method or "PUBLISH", "charset": "utf-8"},
        )
    return SharedMail(message.as_bytes())


def start_words(starts_at: datetime, language: str, tz_name: str, *, now: datetime):
    """The start as the message says it at `now`: (今天 16:00, 3分钟后). Both parts are
    worked out when the message is sent, never when it was planned; what they depend on
    (the minutes left, the recipient's day) changes once a minute, so they are memoised."""
    seconds = (starts_at - now).total_seconds()
    left = timedelta(seconds=30) if seconds < 60 else timedelta(minutes=round(seconds / 60))
    today = now.astimezone(zone(tz_name)).date()
    return _start_words(starts_at, language, tz_name, left, today)


@lru_cache(maxsize=4096)
def _start_words(starts_at: datetime, language: str, tz_name: str, left: timedelta, today):
    as_of = datetime.combine(today, time(12), tzinfo=zone(tz_name))
    with force_locale(language):
        return (
            format_start(starts_at, tz_name, now=as_of),
            format_until(starts_at, now=starts_at - left),
        )


def render_reminder(
    session: LectureSession, language: str, tz_name: str, *, now: datetime
) -> SharedMail:
    """The reminder for one session, in one language and zone, as it reads at `now`."""
    starts, starts_in = start_words(session.starts_at, language, tz_name, now=now)
    with force_locale(language):
        urls = _urls(session, session.series)
        context = {
            "session": session,
            "summary": session_summary(session),
            "starts": starts,
            "starts_in": starts_in,
            "time_text": format_time_range(session.starts_at, session.ends_at, tz_name),
            "language": language,
            **urls,
        }
        subject = render_template("emails/reminder.subject.txt", **context)
        text = render_template("emails/reminder.txt", **context)
        html = render_template("emails/reminder.html", **context)
    ics = session_calendar(session, method="PUBLISH", page_url=urls["join_url"])
    return _build(subject, text, html, ics, "PUBLISH", now=now)


def render_login_mail(name: str, link: str, language: str, *, now: datetime) -> SharedMail:
    """A one-time log-in link, sent because an organizer or an admin asked for it."""
    with force_locale(language):
        context = {"name": name, "link": link, "language": language}
        subject = _("Your Yunketang sign-in link")
        text = render_template("emails/login_link.txt", **context)
        html = render_template("emails/login_link.html", **context)
    return _build(subject, text, html, None, None, now=now)


def notice_lines(changes: list[dict], tz_name: str) -> list[str]:
    """What changed, said once per kind: the first old time → the latest new one."""
    lines = []
    moves = [c for c in changes if c["kind"] == "rescheduled"]
    if moves:
        first, last = moves[0]["details"], moves[-1]["details"]
        lines.append(
            _(
                "The time has changed: was %(old)s, now %(new)s.",
                old=format_time_range(
                    datetime.fromisoformat(first["old_starts_at"]),
                    datetime.fromisoformat(first["old_ends_at"]),
                    tz_name,
                ),
                new=format_time_range(
                    datetime.fromisoformat(last["new_starts_at"]),
                    datetime.fromisoformat(last["new_ends_at"]),
                    tz_name,
                ),
            )
        )
        if last.get("reason"):
            lines.append(_("Reason: %(reason)s", reason=last["reason"]))
    for change in changes:
        details = change["details"]
        if change["kind"] == "cancelled":
            lines.append(
                _("This session is cancelled. Reason: %(reason)s", reason=details.get("reason", ""))
            )
        elif change["kind"] == "agenda_changed":
            lines.append(
                _(
                    "Agenda: 《%(lecture)s》 %(old)s → %(new)s",
                    lecture=details.get("lecture", ""),
                    old="、".join(details.get("old_speakers", [])) or "—",
                    new="、".join(details.get("new_speakers", [])) or "—",
                )
            )
        elif change["kind"] == "enrolled":
            lines.append(_("You are enrolled in this series."))
        elif change["kind"] == "promoted":
            lines.append(_("A seat became free: you moved up from the waitlist and are enrolled."))
        elif change["kind"] == "attendance":
            lines.append(attendance_line(details.get("counts", {})))
    return lines


def attendance_line(counts: dict) -> str:
    return _(
        "Attendance is final: %(present)d present, %(late)d late, %(made_up)d made up by "
        "replay, %(left)d left early, %(absent)d absent, %(excused)d excused.",
        present=counts.get("present", 0),
        late=counts.get("late", 0),
        made_up=counts.get("made_up", 0),
        left=counts.get("left_early", 0),
        absent=counts.get("absent", 0),
        excused=counts.get("excused", 0),
    )


def render_notice(
    changes: list[dict],
    session: LectureSession | None,
    series: Series,
    language: str,
    tz_name: str,
    *,
    now: datetime,
) -> SharedMail:
    """One message for a participant's pending changes; calendar clients get an iTIP update
    (REQUEST with the raised sequence for a move, CANCEL for a cancellation)."""
    kinds = {change["kind"] for change in changes}
    with force_locale(language):
        urls = _urls(session, series)
        context = {
            "session": session,
            "series": series,
            "summary": session_summary(session) if session else series.title,
            "lines": notice_lines(changes, tz_name),
            "cancelled": "cancelled" in kinds,
            "moved": "rescheduled" in kinds,
            "agenda": "agenda_changed" in kinds,
            "promoted": "promoted" in kinds,
            "attendance": "attendance" in kinds,
            "time_text": format_time_range(session.starts_at, session.ends_at, tz_name)
            if session
            else "",
            "language": language,
            **urls,
        }
        subject = render_template("emails/notice.subject.txt", **context)
        text = render_template("emails/notice.txt", **context)
        html = render_template("emails/notice.html", **context)
    ics = method = None
    if session is not None and kinds & {"cancelled", "rescheduled", "agenda_changed"}:
        method = "CANCEL" if session.is_cancelled else "REQUEST"
        ics = session_calendar(session, method=method, page_url=urls["join_url"])
    return _build(subject, text, html, ics, method, now=now)


def _address_only(sender: str) -> str:
    return sender.rsplit("<", 1)[-1].rstrip(">").strip()


DELIVERY_KEY = re.compile(r"[A-Za-z0-9:._-]{1,200}")


def personalise(shared: SharedMail, name: str, address: str, delivery_key: str) -> bytes:
    """Add the recipient's own headers in front of the shared message.

    Called once per message, so it is kept cheap: the address must be a plain addr-spec
    (no display name, brackets, spaces or line breaks), the name is RFC 2047 encoded by
    formataddr, and the key and Message-ID are ASCII by construction."""
    if not DELIVERY_KEY.fullmatch(delivery_key):
        raise ValueError(f"not a delivery key: {delivery_key!r}")
    if not PLAIN_ADDRESS.fullmatch(address):
        raise ValueError(f"not a plain address: {address!r}")
    to = _mailbox(clean_line(name) or "", address)
    message_id = make_msgid(idstring=delivery_key.replace(":", "."), domain=calendar_host())
    headers = f"To: {to}\r\nMessage-ID: {message_id}\r\nX-Yunketang-Delivery: {delivery_key}\r\n"
    return headers.encode("ascii") + shared.body


def _mailbox(name: str, address: str) -> str:
    """`name <address>`: an ASCII name quoted as needed; a short non-ASCII name (every
    usual one) as one RFC 2047 encoded word, cheaply; a long one by the email package."""
    if not name or name.isascii():
        return formataddr((name, address))
    data = name.encode()
    if len(data) <= 45:  # 60 characters in base64, 72 with the markers: one encoded word
        return f"=?utf-8?b?{b64encode(data).decode()}?= <{address}>"
    return formataddr((name, address), charset="utf-8")


def digest_text(session: LectureSession, webhook, *, now: datetime) -> str:
    """The group robot's reminder, in the site language: one message for the whole group,
    as it reads at `now`."""
    language = current_app.config["DEFAULT_LOCALE"]
    starts, starts_in = start_words(session.starts_at, language, session.series.timezone, now=now)
    with force_locale(language):
        urls = _urls(session, session.series)
        return render_template(
            "webhooks/digest.txt",
            summary=session_summary(session),
            starts=starts,
            starts_in=starts_in,
            time_text=format_time_range(
                session.starts_at, session.ends_at, session.series.timezone
            ),
            enrolled=enrolled_in_scope(session.series, webhook.unit_id),
            is_unit=webhook.unit_id is not None,
            session=session,
            **urls,
        ).strip()


def mention_text(session: LectureSession, absent) -> str:
    """The message that @-mentions members who have not joined (plain text: the robots'
    markdown cannot mention anyone)."""
    with force_locale(current_app.config["DEFAULT_LOCALE"]):
        urls = _urls(session, session.series)
        return render_template(
            "webhooks/mention.txt",
            summary=session_summary(session),
            names="、".join(user.display_name for user in absent),
            **urls,
        ).strip()


def mobile_for_robot(phone: str) -> str:
    """Robots mention by the national number: +8613910000001 → 13910000001."""
    return phone[3:] if phone.startswith("+86") else phone.lstrip("+")
