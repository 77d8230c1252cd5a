from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from webapp.auth.forms import LoginForm, LogoutForm, SetPasswordForm
from webapp.db import db, utcnow
from webapp.errors import DomainError
from webapp.forms import show_domain_error
from webapp.people.services import authenticate, redeem_login_token, set_password
from webapp.urls import safe_next_url

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if form.validate_on_submit():
        user = authenticate(form.identifier.data, form.password.data, now=utcnow())
        if user is None:
            db.session.rollback()
            form.password.errors.append(_("The email/mobile number or password is wrong."))
            return render_template("auth/login.html", form=form), 401
        db.session.commit()
        target = safe_next_url(form.next.data) or url_for("home.index")
        # A fresh session on log-in, so a session id planted before cannot be reused.
        session.clear()
        login_user(user, remember=form.remember.data)
        return redirect(target)
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout():
    form = LogoutForm()
    if form.validate_on_submit():
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
    db.session.commit()
    logout_user()
    session.clear()
    login_user(user)
    flash(_("Welcome! Choose a password for your next visits."), "info")
    return redirect(url_for("auth.password"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            set_password(current_user, form.password.data)
        except DomainError as error:
            show_domain_error(form, error)
        else:
            db.session.commit()
            # The password change ended every session, this one too: log back in.
            login_user(current_user._get_current_object())
            flash(_("Your password is saved."), "info")
            return redirect(url_for("home.index"))
    return render_template("auth/password.html", form=form)
