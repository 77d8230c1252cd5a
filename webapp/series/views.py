from flask import Blueprint, abort, render_template
from flask_login import current_user

from webapp.auth.access import login_manager
from webapp.series.services import (
    can_manage_series,
    can_view_series,
    enrolled_count,
    load_series_page,
)

bp = Blueprint("series", __name__, url_prefix="/series")


@bp.get("/<int:series_id>")
def detail(series_id: int):
    series = load_series_page(series_id)
    if series is None:
        abort(404)
    if not can_view_series(current_user, series):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        abort(403)
    return render_template(
        "series/detail.html",
        series=series,
        can_manage=can_manage_series(current_user, series),
        enrolled_count=enrolled_count(series),
    )
