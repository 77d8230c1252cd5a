"""Logging in: the login manager. Who may use which route is webapp/permissions.py;
anonymous HTML clients are sent to log in, JSON clients get 401."""

from flask import abort, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager

from webapp.errors import wants_json
from webapp.people.logins import (
    load_user_for_session,
)

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to continue.")
login_manager.login_message_category = "info"
# "basic" keeps phones logged in when their IP address changes between networks.
login_manager.session_protection = "basic"


@login_manager.user_loader
def _load_user(session_id: str):
    return load_user_for_session(session_id)


@login_manager.unauthorized_handler
def _unauthorized():
    if wants_json():
        abort(401)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
