"""Every status with its reasons, in the reader's language: "16:07 进入，16:40–16:44 断开，
17:55 离开 → 87% → 出席（迟到）". Nobody has to trust an opaque number."""

import functools

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from webapp.attendance.rules import Record, Status
from webapp.i18n import format_clock

STATUS_NAMES = {
    Status.PRESENT: _l("present"),
    Status.LATE: _l("present (late)"),
    Status.LEFT_EARLY: _l("left early"),
    Status.ABSENT: _l("absent"),
    Status.MADE_UP: _l("present by make-up (replay)"),
    Status.EXCUSED: _l("excused"),
}


def status_name(status: Status | str) -> str:
    return str(STATUS_NAMES[Status(status)])


def explain(record: Record, tz_name: str, *, override=None) -> str:
    """The record in words, then the share, then the status (and a hand-set status with its
    reason, when there is one)."""
    if record.first_join is None:
        steps = [_("no attendance recorded")]
    else:
        steps = [_("%(time)s in", time=format_clock(record.first_join, tz_name))]
        for gap in record.gaps:
            start, end = format_clock(gap.start, tz_name), format_clock(gap.end, tz_name)
            if any(a.start < gap.end and gap.start < a.end for a in record.away):
                steps.append(
                    _("%(start)s–%(end)s did not answer “still listening?”", start=start, end=end)
                )
            else:
                steps.append(_("%(start)s–%(end)s away", start=start, end=end))
        steps.append(_("%(time)s out", time=format_clock(record.last_leave, tz_name)))
    text = functools.reduce(lambda before, after: _("%(before)s, %(after)s", before=before,
                                                       after=after), steps)  # fmt: skip
    text += f" → {round(record.share * 100)}%"
    if record.makeup_seconds:
        text += " " + _(
            "+ %(minutes)d minutes of replay before the deadline",
            minutes=round(record.makeup_seconds / 60),
        )
    text += f" → {status_name(record.status)}"
    if override is not None:
        name = override.set_by.display_name if override.set_by else "—"
        if override.status is None:
            text += " → " + _(
                "back to the rules by %(name)s: %(reason)s", name=name, reason=override.reason
            )
        else:
            text += " → " + _(
                "set to %(status)s by %(name)s: %(reason)s",
                status=status_name(override.status),
                name=name,
                reason=override.reason,
            )
    return text
