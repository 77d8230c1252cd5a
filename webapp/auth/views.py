import math

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from webapp.auth.forms import LoginForm, LogoutForm, SetPasswordForm
from webapp.db import db, utcnow
from webapp.people.logins import (
    begin_login_session,
    clear_login_failures,
    end_login_session,
    login_locked_until,
    record_login_failure,
    redeem_login_token,
)
from webapp.people.services import (
    authenticate,
    check_password,
    set_password,
)
from webapp.reminders.direct import sms_available
from webapp.urls import safe_next_url
from webapp.work import unit_of_work

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        now, address = utcnow(), request.remote_addr
        identifier = form.identifier.data
        # Checked before the password, and worded the same whether the account exists.
        locked_until = login_locked_until(identifier, address, now=now)
        if locked_until is not None:
            minutes = max(1, math.ceil((locked_until - now).total_seconds() / 60))
            form.password.errors.append(
                _(
                    "Too many failed attempts. Please try again in %(minutes)d minutes.",
                    minutes=minutes,
                )
            )
            return render_template("auth/login.html", form=form, sms_login=sms_available()), 429
        user = authenticate(identifier, form.password.data, now=now)
        if user is None:
            db.session.rollback()
            record_login_failure(identifier, address, now=now)
            db.session.commit()
            form.password.errors.append(_("The email/mobile number or password is wrong."))
            return render_template("auth/login.html", form=form, sms_login=sms_available()), 401
        clear_login_failures(identifier, now=now)
        target = safe_next_url(form.next.data) or url_for("home.index")
        _log_in(user, remember=form.remember.data, now=now)
        return redirect(target)
    return render_template("auth/login.html", form=form, sms_login=sms_available())


def _log_in(user, *, remember: bool = False, now) -> None:
    """Start a log-in session on the server and in a fresh cookie (so a session id planted
    before cannot be reused), and commit."""
    user.login_session_token = begin_login_session(user, now=now)
    db.session.commit()
    session.clear()
    login_user(user, remember=remember)


@bp.post("/logout")
def logout():
    form = LogoutForm()
    if form.validate_on_submit():
        if current_user.is_authenticated:
            end_login_session(current_user.login_session_token, now=utcnow())
            db.session.commit()
        logout_user()
        session.clear()
        flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.get("/login/link/<token>")
def login_link(token: str):
    """A one-time log-in link handed to a new participant; then they choose a password."""
    user = redeem_login_token(token, now=utcnow())
    if user is None:
        db.session.rollback()
        flash(
            _(
                "This log-in link has expired or was already used. Ask your organizer for a "
                "new one."
            ),
            "error",
        )
        return redirect(url_for("auth.login"))
    if current_user.is_authenticated:
        end_login_session(current_user.login_session_token, now=utcnow())
    logout_user()
    _log_in(user, now=utcnow())
    flash(_("Welcome! Choose a password for your next visits."), "info")
    return redirect(url_for("auth.password"))


@bp.route("/account/password", methods=["GET", "POST"])
def password():
    form = SetPasswordForm()
    # Someone who has a password proves it first; a new account from a log-in link has none.
    needs_current = current_user.password_hash is not None
    if form.validate_on_submit():
        user = current_user._get_current_object()
        if needs_current and not check_password(user, form.current_password.data or ""):
            form.current_password.errors.append(_("The current password is wrong."))
        else:
            with unit_of_work(form) as work:
                set_password(user, form.password.data, now=utcnow())
                # The password change ended every session, this one too: log back in.
                _log_in(user, now=utcnow())
            if work.done:
                flash(_("Your password is saved."), "info")
                return redirect(url_for("home.index"))
    return render_template("auth/password.html", form=form, needs_current=needs_current)
