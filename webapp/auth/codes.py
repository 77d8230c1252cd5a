"""Getting in without a password: a code by SMS (验证码登录), and "forgot password" by an
SMS code or an emailed log-in link. Every answer is worded the same whether or not the
number or address has an account."""

import logging

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

from webapp.auth.forms import CodeForm, CodeRequestForm, ForgotForm, ResetForm
from webapp.auth.views import _log_in, bp
from webapp.db import db, utcnow
from webapp.errors import InvalidInput
from webapp.i18n import current_language
from webapp.people.codes import TooManyCodes, issue_code, redeem_code
from webapp.people.identifiers import normalise_email
from webapp.people.models import LoginCodePurpose, User
from webapp.people.services import find_user_by_identifier, set_password
from webapp.reminders.channels import DeliveryError
from webapp.reminders.direct import queue_login_links, send_code_now, sms_available
from webapp.reminders.models import Channel
from webapp.work import unit_of_work

log = logging.getLogger(__name__)
PHONE_KEY = "code_phone"


def _send_code(form, purpose: LoginCodePurpose) -> bool:
    """Ask for a code for the number in form.phone / form.identifier; False with the
    form's error set when it cannot go (limits, SMS failing)."""
    field = form.phone if hasattr(form, "phone") else form.identifier
    now = utcnow()
    try:
        row, code = issue_code(field.data, purpose, client=request.remote_addr or "-", now=now)
        if code is not None:
            send_code_now(row, code, language=current_language(), now=now)
    except TooManyCodes as error:
        db.session.rollback()
        field.errors.append(str(error))
        return False
    except InvalidInput as error:
        db.session.rollback()
        field.errors.append(error.message)
        return False
    except DeliveryError as error:
        db.session.rollback()
        log.warning("sign-in code not sent: %s", error)
        field.errors.append(
            _("The code could not be sent just now. Please try again later or use your password.")
        )
        return False
    db.session.commit()
    session[PHONE_KEY] = row.phone
    return True


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    if not sms_available():
        flash(_("Sign-in by SMS code is not available on this site."), "error")
        return redirect(url_for("auth.login"))
    form = CodeRequestForm()
    if form.validate_on_submit():
        if _send_code(form, LoginCodePurpose.LOGIN):
            return redirect(url_for("auth.login_code_enter"))
        return render_template("auth/code_request.html", form=form), 429
    return render_template("auth/code_request.html", form=form)


@bp.route("/login/code/enter", methods=["GET", "POST"])
def login_code_enter():
    phone = session.get(PHONE_KEY)
    if not phone:
        return redirect(url_for("auth.login_code"))
    form = CodeForm()
    if form.validate_on_submit():
        user = redeem_code(phone, form.code.data, LoginCodePurpose.LOGIN, now=utcnow())
        db.session.commit()
        if user is None:
            form.code.errors.append(
                _("The code is wrong or has expired. Ask for a new one if needed.")
            )
            return render_template("auth/code_enter.html", form=form, phone=phone), 401
        _log_in(user, remember=form.remember.data, now=utcnow())
        return redirect(url_for("home.index"))
    return render_template("auth/code_enter.html", form=form, phone=phone)


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    form = ForgotForm()
    if form.validate_on_submit():
        identifier = form.identifier.data.strip()
        if "@" in identifier:
            try:
                address = normalise_email(identifier)
            except InvalidInput as error:
                form.identifier.errors.append(error.message)
                return render_template("auth/forgot.html", form=form, sms=sms_available()), 400
            user = find_user_by_identifier(address)
            if user is not None and user.is_active:
                queue_login_links([user], now=utcnow(), only=Channel.EMAIL)
                db.session.commit()
            flash(
                _(
                    "If an account has this address, a sign-in link is on its way to it. "
                    "After signing in, choose a new password."
                ),
                "info",
            )
            return redirect(url_for("auth.login"))
        if not sms_available():
            form.identifier.errors.append(
                _("Codes by SMS are not available on this site: enter your email address.")
            )
            return render_template("auth/forgot.html", form=form, sms=False), 400
        if _send_code(form, LoginCodePurpose.RESET):
            return redirect(url_for("auth.reset_password"))
        return render_template("auth/forgot.html", form=form, sms=True), 429
    return render_template("auth/forgot.html", form=form, sms=sms_available())


@bp.route("/password/reset", methods=["GET", "POST"])
def reset_password():
    phone = session.get(PHONE_KEY)
    if not phone:
        return redirect(url_for("auth.forgot_password"))
    form = ResetForm()
    if form.validate_on_submit():
        user = redeem_code(phone, form.code.data, LoginCodePurpose.RESET, now=utcnow())
        if user is None:
            db.session.commit()  # the try counts
            form.code.errors.append(
                _("The code is wrong or has expired. Ask for a new one if needed.")
            )
            return render_template("auth/reset.html", form=form, phone=phone), 401
        with unit_of_work(form) as work:
            set_password(user, form.password.data, now=utcnow())
        if work.done:
            session.pop(PHONE_KEY, None)
            _log_in(db.session.get(User, user.id), now=utcnow())
            flash(_("Your password is saved."), "info")
            return redirect(url_for("home.index"))
        return render_template("auth/reset.html", form=form, phone=phone), 400
    return render_template("auth/reset.html", form=form, phone=phone)
