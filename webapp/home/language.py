"""The language switch."""

from flask import Blueprint, current_app, redirect, request, url_for
from flask_login import current_user

from webapp.db import db
from webapp.i18n.forms import LanguageForm
from webapp.people.services import (
    update_preferences,
)
from webapp.urls import safe_next_url

bp = Blueprint("i18n", __name__)


@bp.post("/language")
def set_language():
    """Remember the chosen language for this browser and, when logged in, for the user."""
    form = LanguageForm()
    target = safe_next_url(form.next.data) or url_for("home.index")
    if not form.validate_on_submit():
        return redirect(target)
    response = redirect(target)
    response.set_cookie(
        current_app.config["LOCALE_COOKIE_NAME"],
        form.locale.data,
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
    )
    if current_user.is_authenticated:
        update_preferences(current_user, locale=form.locale.data)
        db.session.commit()
    return response
