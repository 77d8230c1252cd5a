"""Settings an admin may change while the product runs, stored in the database.

Each has a default from the configuration (the environment or instance/config.py); a value
an admin saved overrides it until they reset it. Every change is in the audit log
(`setting.changed`, with the old and the new value), which is the settings' history.

Processes read a saved value at most SETTINGS_CACHE_SECONDS old: the process that saves a
change sees it at once, the others (other web processes, the workers) within seconds.
Secrets are never settings: provider keys stay in the environment.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column

from webapp import audit
from webapp.db import db
from webapp.errors import InvalidInput

# The personal channels, as webapp.reminders.models.Channel names them (a test holds the two
# together; this module sits below the reminders domain and cannot import it).
PERSONAL_CHANNELS = ("wecom", "dingtalk", "sms", "email")
CACHE_SECONDS = 5.0


class Setting(db.Model):
    """A value an admin saved; without a row, the configured default applies."""

    __tablename__ = "setting"

    name: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(200))
    changed_at: Mapped[datetime]
    changed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))


def _channels(text: str) -> str:
    names = [part.strip().lower() for part in text.replace("，", ",").split(",") if part.strip()]
    unknown = [name for name in names if name not in PERSONAL_CHANNELS]
    if unknown:
        raise InvalidInput(
            _(
                "Unknown channel %(names)s; the channels are wecom, dingtalk, sms and email.",
                names="、".join(unknown),
            ),
            field="value",
        )
    if len(set(names)) != len(names):
        raise InvalidInput(_("Name each channel once."), field="value")
    return ",".join(names)


MAX_REMINDER_MINUTES = 30 * 24 * 60


def _minutes_list(text: str) -> str:
    parts = [part.strip() for part in text.replace("，", ",").split(",") if part.strip()]
    try:
        minutes = sorted({int(part) for part in parts}, reverse=True)
    except ValueError:
        raise InvalidInput(
            _("Give whole numbers of minutes, separated by commas (1440,15)."), field="value"
        ) from None
    if len(minutes) > 5 or any(not 1 <= value <= MAX_REMINDER_MINUTES for value in minutes):
        raise InvalidInput(
            _("Up to five reminders, each between 1 minute and 30 days before."), field="value"
        )
    return ",".join(str(value) for value in minutes)


def _whole_number(low: int, high: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            value = int(text.strip())
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise InvalidInput(
                _("Enter a whole number from %(low)d to %(high)d.", low=low, high=high),
                field="value",
            )
        return str(value)

    return parse


@dataclass(frozen=True)
class Spec:
    label: object  # a lazy string
    help: object
    default: Callable[[dict], str]  # from the configuration
    parse: Callable[[str], str]  # raises InvalidInput


SPECS: dict[str, Spec] = {
    "channel_order": Spec(
        _l("Personal channels, in the order they are tried"),
        _l("Comma-separated: wecom, dingtalk, sms, email. A channel left out is not used."),
        lambda config: str(config["CHANNEL_ORDER"]),
        _channels,
    ),
    "reminder_minutes": Spec(
        _l("Reminders a new series starts with (minutes before each session)"),
        _l("Comma-separated, e.g. 1440,15 (a day and a quarter of an hour before)."),
        lambda config: str(config["DEFAULT_REMINDER_MINUTES"]),
        _minutes_list,
    ),
    "attendance_share": Spec(
        _l("Attendance of a new series: present with at least this share of a session (%)"),
        _l("1 to 100; each series can set its own."),
        lambda config: str(config["DEFAULT_ATTENDANCE_SHARE"]),
        _whole_number(1, 100),
    ),
    "attendance_late_minutes": Spec(
        _l("Attendance of a new series: late when first in this many minutes after the start"),
        _l("0 to 600; each series can set its own."),
        lambda config: str(config["DEFAULT_ATTENDANCE_LATE_MINUTES"]),
        _whole_number(0, 600),
    ),
    "attendance_gap_minutes": Spec(
        _l("Attendance of a new series: breaks shorter than this many minutes are bridged"),
        _l("0 to 60; each series can set its own."),
        lambda config: str(config["DEFAULT_ATTENDANCE_GAP_MINUTES"]),
        _whole_number(0, 60),
    ),
}


def _saved() -> dict[str, str]:
    """The saved values, read at most CACHE_SECONDS ago in this process."""
    cache = current_app.extensions.setdefault("yunketang.settings", {})
    if cache.get("at", -CACHE_SECONDS) + CACHE_SECONDS <= time.monotonic():
        cache["values"] = dict(db.session.execute(sa.select(Setting.name, Setting.value)).all())
        cache["at"] = time.monotonic()
    return cache["values"]


def _forget() -> None:
    current_app.extensions.setdefault("yunketang.settings", {}).pop("at", None)


def value(name: str, config=None) -> str:
    """The setting's value now: what an admin saved, else the configured default."""
    saved = _saved().get(name)
    return saved if saved is not None else SPECS[name].default(config or current_app.config)


def is_saved(name: str) -> bool:
    return name in _saved()


def change(name: str, text: str | None, *, by=None, now: datetime) -> bool:
    """Save a setting (None or empty: back to the configured default); returns whether it
    changed. Recorded in the audit log with the old and the new value."""
    spec = SPECS[name]
    old = value(name)
    row = db.session.get(Setting, name)
    if text is None or not text.strip():
        if row is None:
            return False
        db.session.delete(row)
        new = spec.default(current_app.config)
    else:
        new = spec.parse(text)
        if row is not None and row.value == new:
            return False
        if row is None:
            row = Setting(name=name)
            db.session.add(row)
        row.value, row.changed_at, row.changed_by_id = new, now, by.id if by else None
    db.session.flush()
    _forget()
    audit.record(
        "setting.changed",
        object_type="setting",
        object_id=None,
        label=name,
        details={"old": old, "new": new, "reset": not (text or "").strip()},
        by=by,
        now=now,
    )
    return True


def reminder_minutes() -> tuple[int, ...]:
    return tuple(int(part) for part in value("reminder_minutes").split(",") if part)


def attendance_defaults() -> dict[str, int]:
    """The thresholds a new series starts with."""
    return {
        name: int(value(name))
        for name in ("attendance_share", "attendance_late_minutes", "attendance_gap_minutes")
    }
