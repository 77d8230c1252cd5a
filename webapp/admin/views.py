from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from webapp.admin.forms import LiaisonForm
from webapp.db import db
from webapp.forms import ActionForm, as_choices
from webapp.people.models import Unit, User
from webapp.people.services import (
    count_people,
    find_user_by_identifier,
    list_users,
)
from webapp.people.units import (
    add_liaison,
    remove_liaison,
    unit_tree,
)
from webapp.series.services import (
    count_series,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
def index():
    return render_template("admin/index.html", counts={**count_people(), "series": count_series()})


@bp.get("/users")
def users():
    return render_template("admin/users.html", users=list_users())


@bp.route("/units", methods=["GET", "POST"])
def units():
    """The unit tree with each unit's liaisons (联络员), who see and confirm its rosters."""
    tree = unit_tree()
    form = LiaisonForm()
    form.unit_id.choices = as_choices((unit.id, "　" * depth + unit.name) for unit, depth in tree)
    if form.validate_on_submit():
        user = find_user_by_identifier(form.identifier.data)
        if user is None:
            form.identifier.errors.append(_("No account has this email or mobile number."))
        else:
            unit = db.get_or_404(Unit, form.unit_id.data)
            add_liaison(unit, user)
            db.session.commit()
            flash(
                _("%(name)s is now a liaison of %(unit)s.", name=user.display_name, unit=unit.name),
                "info",
            )
            return redirect(url_for("admin.units"))
    return render_template("admin/units.html", tree=tree, form=form, action_form=ActionForm()), (
        400 if form.errors else 200
    )


@bp.post("/units/<int:unit_id>/liaisons/<int:user_id>/remove")
def remove_liaison_view(unit_id: int, user_id: int):
    unit = db.get_or_404(Unit, unit_id)
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        remove_liaison(unit, user)
        db.session.commit()
        flash(_("Removed."), "info")
    return redirect(url_for("admin.units"))
