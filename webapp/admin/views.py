from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from webapp.admin.forms import UserForm
from webapp.db import db, utcnow
from webapp.forms import ActionForm, as_choices
from webapp.pages.logins import hand_out_link
from webapp.people import accounts
from webapp.people.models import Role, Unit, User
from webapp.people.services import (
    count_people,
    list_users,
)
from webapp.people.units import (
    unit_tree,
)
from webapp.reminders.reach import CHANNEL_NAMES, reach_display
from webapp.series.services import (
    count_series,
)
from webapp.work import unit_of_work

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
def index():
    return render_template("admin/index.html", counts={**count_people(), "series": count_series()})


@bp.get("/users")
def users():
    return render_template("admin/users.html", users=list_users())


# --- editing an account ---------------------------------------------------------------------


def _user_form(user: User) -> UserForm:
    form = UserForm(obj=user)
    form.unit_id.choices = as_choices(
        [(0, _("(none)"))] + [(unit.id, "　" * depth + unit.name) for unit, depth in unit_tree()]
    )
    if not form.is_submitted():
        form.unit_id.data = user.unit_id or 0
        form.organizer.data = Role.ORGANIZER in user.roles
        form.admin.data = Role.ADMIN in user.roles
        form.phone.data = user.phone or ""
        form.email.data = user.email or ""
    return form


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int):
    user = db.get_or_404(User, user_id)
    form = _user_form(user)
    if form.validate_on_submit():
        roles = {Role.PARTICIPANT}
        roles |= {Role.ORGANIZER} if form.organizer.data else set()
        roles |= {Role.ADMIN} if form.admin.data else set()
        with unit_of_work(form) as work:
            changes = accounts.edit_user(
                user,
                by=current_user,
                now=utcnow(),
                display_name=form.display_name.data,
                phone=form.phone.data,
                email=form.email.data,
                unit=db.session.get(Unit, form.unit_id.data) if form.unit_id.data else None,
                job_title=form.job_title.data,
                roles=roles,
            )
        if work.done:
            flash(_("Saved.") if changes else _("Nothing changed."), "info")
            return redirect(url_for("admin.edit_user", user_id=user.id))
    return render_template(
        "admin/user.html",
        user=user,
        form=form,
        history=accounts.changes_of(user),
        action_form=ActionForm(),
        reach=reach_display([user], now=utcnow())[user.id],
        channel_names=CHANNEL_NAMES,
    ), (400 if form.errors else 200)


@bp.post("/users/<int:user_id>/<any(deactivate, reactivate):action>")
def set_user_active(user_id: int, action: str):
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            accounts.set_active(user, action == "reactivate", by=current_user, now=utcnow())
        if work.done:
            flash(
                _("%(name)s can sign in again.", name=user.display_name)
                if action == "reactivate"
                else _(
                    "%(name)s is deactivated: signed out everywhere, sent nothing.",
                    name=user.display_name,
                ),
                "info",
            )
    return redirect(url_for("admin.edit_user", user_id=user.id))


@bp.post("/users/<int:user_id>/login-link/<any(send, show):how>")
def user_login_link(user_id: int, how: str):
    """A new log-in link instead of setting a password: sent through the person's channel,
    or shown once with its QR code."""
    user = db.get_or_404(User, user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    now = utcnow()
    if not user.is_active:
        flash(_("Reactivate the account first."), "error")
        return redirect(url_for("admin.edit_user", user_id=user.id))
    accounts.record_change(user, "link_" + how, {}, by=current_user, now=now)
    return hand_out_link(
        user, how, series_id=None, back_url=url_for("admin.edit_user", user_id=user.id)
    )
