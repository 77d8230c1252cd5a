from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from webapp.auth.forms import LoginForm, LogoutForm
from webapp.db import db, utcnow
from webapp.people.services import authenticate
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
