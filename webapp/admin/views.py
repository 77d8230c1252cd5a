from flask import Blueprint, render_template

from webapp.auth.access import roles_required
from webapp.people.models import Role
from webapp.people.services import count_people, list_users, unit_tree
from webapp.series.services import count_series

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@roles_required(Role.ADMIN)
def index():
    return render_template("admin/index.html", counts={**count_people(), "series": count_series()})


@bp.get("/users")
@roles_required(Role.ADMIN)
def users():
    return render_template("admin/users.html", users=list_users())


@bp.get("/units")
@roles_required(Role.ADMIN)
def units():
    return render_template("admin/units.html", tree=unit_tree())
