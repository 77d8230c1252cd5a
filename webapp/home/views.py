from datetime import timedelta

from flask import Blueprint, jsonify, render_template
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import text

from webapp.db import db, utcnow
from webapp.reminders.outbox import waiting_and_unreached
from webapp.series.models import SeriesStatus
from webapp.series.rosters import rosters_for_liaison
from webapp.series.services import (
    series_managed_by,
)
from webapp.sessions.joining import room_is_open
from webapp.sessions.models import SessionStatus
from webapp.sessions.schedule import (
    live_sessions_for,
    past_sessions_for,
    upcoming_sessions_for,
)
from webapp.zones import (
    user_timezone_name,
)

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """A dashboard for each role: the next session with its countdown and join button; the
    series that need the organizer; the rosters a liaison looks after."""
    user = current_user._get_current_object()
    now = utcnow()
    upcoming = upcoming_sessions_for(user, now=now)
    # The next session to go to: not cancelled, and not over early (a broadcast ended).
    gone = (SessionStatus.CANCELLED, SessionStatus.ENDED)
    following = next((s for s in upcoming if s.status not in gone), None)
    managed = series_managed_by(user) if user.is_organizer or user.is_admin else []
    return render_template(
        "home/index.html",
        upcoming=upcoming,
        live=live_sessions_for(user),
        next_session=following,
        next_open=following is not None and room_is_open(following, now=now),
        managed_series=managed,
        attention=series_attention(managed, now=now),
        rosters=rosters_for_liaison(user),
        user_timezone=user_timezone_name(user),
        now=now,
    )


def series_attention(series_list, *, now) -> dict[int, list[tuple[str, str]]]:
    """What each series needs from its organizer: (kind, words), the most pressing first."""
    counts = waiting_and_unreached([series.id for series in series_list])
    soon = now + timedelta(hours=24)
    attention = {}
    for series in series_list:
        items = []
        if series.status == SeriesStatus.DRAFT:
            items.append(("draft", _("Draft: participants see nothing until you publish")))
        starting = sum(
            1
            for s in series.sessions
            if s.status != SessionStatus.CANCELLED and now <= s.starts_at < soon
        )
        if starting:
            words = ngettext(
                "%(num)d session within 24 hours", "%(num)d sessions within 24 hours", starting
            )
            items.append(("soon", words))
        waiting, unreached = counts.get(series.id, (0, 0))
        if waiting:
            words = ngettext(
                "%(num)d change notice not sent yet", "%(num)d change notices not sent yet", waiting
            )
            items.append(("waiting", words))
        if unreached:
            words = ngettext(
                "%(num)d message reached nobody", "%(num)d messages reached nobody", unreached
            )
            items.append(("unreached", words))
        attention[series.id] = items
    return attention


@bp.get("/my/schedule")
def schedule():
    user = current_user._get_current_object()
    now = utcnow()
    return render_template(
        "home/schedule.html",
        upcoming=upcoming_sessions_for(user, now=now, limit=200),
        live=live_sessions_for(user),
        past=past_sessions_for(user, now=now),
        user_timezone=user_timezone_name(user),
    )


@bp.get("/healthz")
def health():
    """Answer 200 when the app can reach its database (for load balancers and systemd)."""
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")
