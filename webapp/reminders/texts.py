"""Short messages: SMS (an approved template and its parameters) and the plain text of a
WeCom or DingTalk message, in each person's language and zone, as they read when sent."""

from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from webapp.calendar.ical import session_summary
from webapp.db import db
from webapp.errors import InvalidInput
from webapp.i18n import format_time_range
from webapp.reminders.channels import DeliveryError
from webapp.reminders.messages import notice_lines, start_words
from webapp.reminders.models import SmsTemplate
from webapp.reminders.personal import SmsContent
from webapp.text import clean_line
from webapp.urls import public_url

# Each kind of SMS: its parameters in order (Tencent takes them as a list, Aliyun by name)
# and the text to submit for approval (the sink and the gateway send it as written).
SMS_KINDS: dict[str, tuple[tuple[str, ...], object]] = {
    "reminder": (
        ("course", "time", "left"),
        _l("Reminder: ${course} starts ${time} (${left}). Please be on time."),
    ),
    "rescheduled": (("course", "time"), _l("${course} has a new time: ${time}.")),
    "cancelled": (("course", "time"), _l("${course} (${time}) is cancelled.")),
    "changed": (("course", "time"), _l("${course} (${time}) has changed; see Yunketang.")),
    "attendance": (
        ("course", "present", "absent"),
        _l("Attendance of ${course} is final: ${present} present, ${absent} absent."),
    ),
    "login_code": (
        ("code",),
        _l("Your sign-in code is ${code}, valid for 5 minutes. Do not share it."),
    ),
    "login_link": (("name", "link"), _l("${name}, your Yunketang sign-in link: ${link}")),
}
# Parameters that cannot be shortened: a message that needs them longer than the template
# allows cannot go by SMS.
WHOLE = {"code", "link"}


def template_text(kind: str) -> str:
    return str(SMS_KINDS[kind][1])


def templates_by_kind() -> dict[tuple[str, str], SmsTemplate]:
    return {
        (template.kind, template.language): template
        for template in db.session.scalars(select(SmsTemplate))
    }


def save_template(kind: str, language: str, code: str, max_param_length: int) -> SmsTemplate:
    if kind not in SMS_KINDS or language not in current_app.config["LANGUAGES"]:
        raise InvalidInput(_("Unknown kind of message or language."))
    code = clean_line(code or "")
    if not code or len(code) > 50:
        raise InvalidInput(_("Please enter the template code (at most 50 characters)."))
    if not 1 <= max_param_length <= 500:
        raise InvalidInput(_("The longest parameter must be between 1 and 500 characters."))
    template = db.session.scalar(
        select(SmsTemplate).where(SmsTemplate.kind == kind, SmsTemplate.language == language)
    )
    if template is None:
        template = SmsTemplate(kind=kind, language=language)
        db.session.add(template)
    template.code = code
    template.max_param_length = max_param_length
    db.session.flush()
    return template


def shorten(value: str, limit: int) -> str:
    value = clean_line(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def sms_content(kind: str, params: dict[str, str], language: str, templates) -> SmsContent:
    """The template of this kind in the person's language (else the site's), with each
    parameter cut to the length the template allows. Without a registered template the
    sink and the gateway still send the text; Aliyun and Tencent refuse (see personal.py)."""
    names, pattern = SMS_KINDS[kind]
    template = templates.get((kind, language)) or templates.get(
        (kind, current_app.config["DEFAULT_LOCALE"])
    )
    limit = template.max_param_length if template else None
    values = {}
    for name in names:
        value = clean_line(str(params.get(name, "")))
        if limit is not None and len(value) > limit:
            if name in WHOLE:
                raise DeliveryError(
                    f"the {name} is longer than the SMS template allows ({limit})",
                    permanent=True,
                )
            value = shorten(value, limit)
        values[name] = value
    with force_locale(language):
        text = str(pattern)
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return SmsContent(kind, template.code if template else None, values, text)


def notice_kind(changes: list[dict]) -> str:
    kinds = {change["kind"] for change in changes}
    if kinds == {"attendance"}:
        return "attendance"
    if "cancelled" in kinds:
        return "cancelled"
    if "rescheduled" in kinds:
        return "rescheduled"
    return "changed"


def reminder_sms(session, language: str, tz_name: str, templates, *, now: datetime):
    starts, starts_in = start_words(session.starts_at, language, tz_name, now=now)
    return sms_content(
        "reminder",
        {"course": session_summary(session), "time": starts, "left": starts_in},
        language,
        templates,
    )


def notice_sms(changes, session, series, language, tz_name, templates):
    with force_locale(language):
        time_text = (
            format_time_range(session.starts_at, session.ends_at, tz_name) if session else ""
        )
    summary = session_summary(session) if session else series.title
    kind = notice_kind(changes)
    if kind == "attendance":
        counts = changes[-1]["details"].get("counts", {})
        present = sum(counts.get(name, 0) for name in ("present", "late", "made_up"))
        values = {"course": summary, "present": str(present),
                  "absent": str(counts.get("absent", 0) + counts.get("left_early", 0))}  # fmt: skip
        return sms_content(kind, values, language, templates)
    return sms_content(kind, {"course": summary, "time": time_text}, language, templates)


def reminder_text(session, language: str, tz_name: str, *, now: datetime) -> str:
    """A WeCom or DingTalk reminder: what the email says, in a few lines."""
    starts, starts_in = start_words(session.starts_at, language, tz_name, now=now)
    with force_locale(language):
        lines = [
            _(
                "Reminder: %(title)s starts %(start)s (%(when)s)",
                title=session_summary(session),
                start=starts,
                when=starts_in,
            ),
            _(
                "Time: %(time)s",
                time=format_time_range(session.starts_at, session.ends_at, tz_name),
            ),
        ]
        if session.location:
            lines.append(_("Place: %(place)s", place=session.location))
        lines.append(_("Join: %(url)s", url=public_url("sessions.detail", session_id=session.id)))
    return "\n".join(lines)


def notice_text(changes, session, series, language: str, tz_name: str) -> str:
    with force_locale(language):
        summary = session_summary(session) if session else series.title
        lines = [summary, *notice_lines(changes, tz_name)]
        if session is not None:
            lines.append(
                _(
                    "Time: %(time)s",
                    time=format_time_range(session.starts_at, session.ends_at, tz_name),
                )
            )
            if notice_kind(changes) == "attendance":
                lines.append(public_url("attendance.session_report", session_id=session.id))
            else:
                url = public_url("sessions.detail", session_id=session.id)
                lines.append(_("Join: %(url)s", url=url))
        else:
            lines.append(public_url("series.detail", series_id=series.id))
    return "\n".join(lines)


def login_link_text(name: str, link: str, language: str) -> str:
    with force_locale(language):
        return _(
            "%(name)s, here is your Yunketang sign-in link (for one use, valid 14 days): %(link)s",
            name=name,
            link=link,
        )
