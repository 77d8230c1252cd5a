from flask import Blueprint, jsonify, render_template
from flask_login import current_user
from sqlalchemy import text

from webapp.db import db, utcnow
from webapp.series.rosters import rosters_for_liaison
from webapp.series.services import (
    series_managed_by,
)
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
    user = current_user._get_current_object()
    return render_template(
        "home/index.html",
        upcoming=upcoming_sessions_for(user, now=utcnow()),
        live=live_sessions_for(user),
        managed_series=series_managed_by(user) if user.is_organizer or user.is_admin else [],
        rosters=rosters_for_liaison(user),
        user_timezone=user_timezone_name(user),
    )


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
