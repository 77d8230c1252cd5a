"""Route guards for series pages, shared by the series and sessions blueprints."""

from flask import abort
from flask_login import current_user

from webapp.db import db
from webapp.series.models import Series
from webapp.series.services import can_manage_series


def managed_series(series_id: int) -> Series:
    """Load a series the current user manages (404 when missing, 403 when not theirs)."""
    series = db.get_or_404(Series, series_id)
    if not can_manage_series(current_user, series):
        abort(403)
    return series
