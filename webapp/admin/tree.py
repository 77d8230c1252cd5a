"""The admin's unit tree: add, rename, move, merge and deactivate units, and name their
liaisons (联络员), who see and confirm a unit's rosters."""

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _

from webapp.admin.forms import LiaisonForm, MergeUnitForm, MoveUnitForm, RenameUnitForm, UnitForm
from webapp.admin.views import bp
from webapp.db import db
from webapp.forms import ActionForm, as_choices
from webapp.people.models import Unit, UnitKind, User
from webapp.people.services import find_user_by_identifier
from webapp.people.units import (
    add_liaison,
    create_unit,
    member_counts,
    merge_units,
    move_unit,
    remove_liaison,
    rename_unit,
    set_unit_active,
    unit_and_descendant_ids,
    unit_tree,
)
from webapp.work import unit_of_work


def _choices(tree, *, top: str | None = None, leave_out: set[int] = frozenset()):
    pairs = [
        (unit.id, "　" * depth + unit.name) for unit, depth in tree if unit.id not in leave_out
    ]
    return as_choices(([(0, top)] if top else []) + pairs)


@bp.route("/units", methods=["GET", "POST"])
def units():
    """The whole tree (deactivated units too), a form to add a unit and one to add a
    liaison."""
    tree, active = unit_tree(with_inactive=True), unit_tree()
    unit_form = UnitForm()
    unit_form.parent_id.choices = _choices(active, top=_("(top level)"))
    form = LiaisonForm()
    form.unit_id.choices = _choices(active)
    if unit_form.add_unit.data:
        if unit_form.validate_on_submit():
            parent_id = unit_form.parent_id.data
            with unit_of_work(unit_form) as work:
                unit = create_unit(
                    unit_form.name.data,
                    UnitKind(unit_form.kind.data),
                    db.session.get(Unit, parent_id) if parent_id else None,
                )
            if work.done:
                flash(_("Unit “%(name)s” added.", name=unit.name), "info")
                return redirect(url_for("admin.units"))
    elif form.validate_on_submit():
        user = find_user_by_identifier(form.identifier.data)
        if user is None:
            form.identifier.errors.append(_("No account has this email or mobile number."))
        else:
            unit = db.get_or_404(Unit, form.unit_id.data)
            with unit_of_work(form) as work:
                add_liaison(unit, user)
            if work.done:
                flash(
                    _("%(name)s is now a liaison of %(unit)s.", name=user.display_name,
                      unit=unit.name),
                    "info",
                )  # fmt: skip
                return redirect(url_for("admin.units"))
    return render_template(
        "admin/units.html",
        tree=tree,
        members=member_counts(),
        unit_form=unit_form,
        form=form,
        action_form=ActionForm(),
    ), (400 if form.errors or unit_form.errors else 200)


def _unit_forms(unit: Unit):
    active = unit_tree()
    below = set(unit_and_descendant_ids(unit))
    rename = RenameUnitForm(obj=unit)
    move = MoveUnitForm()
    move.parent_id.choices = _choices(active, top=_("(top level)"), leave_out=below)
    merge = MergeUnitForm()
    merge.target_id.choices = _choices(active, leave_out=below)
    if not move.is_submitted():
        move.parent_id.data = unit.parent_id or 0
    return rename, move, merge


def _unit_page(unit: Unit, rename, move, merge, status: int = 200):
    children = [child for child in unit.children]
    return render_template(
        "admin/unit.html",
        unit=unit,
        members=member_counts().get(unit.id, 0),
        children=children,
        rename=rename,
        move=move,
        merge=merge,
        action_form=ActionForm(),
    ), status


@bp.route("/units/<int:unit_id>", methods=["GET", "POST"])
def unit(unit_id: int):
    """One unit: rename it, move it, merge it into another, deactivate it."""
    unit = db.get_or_404(Unit, unit_id)
    rename, move, merge = _unit_forms(unit)
    if move.move.data:
        if move.validate_on_submit():
            parent = db.session.get(Unit, move.parent_id.data) if move.parent_id.data else None
            with unit_of_work(move) as work:
                move_unit(unit, parent)
            if work.done:
                flash(_("Moved."), "info")
                return redirect(url_for("admin.unit", unit_id=unit.id))
    elif merge.merge.data:
        if merge.validate_on_submit():
            target = db.get_or_404(Unit, merge.target_id.data)
            with unit_of_work(merge) as work:
                moved = merge_units(unit, target)
            if work.done:
                flash(_merged_message(moved, target), "info")
                return redirect(url_for("admin.unit", unit_id=target.id))
    elif rename.validate_on_submit():
        with unit_of_work(rename) as work:
            rename_unit(unit, rename.name.data, UnitKind(rename.kind.data))
        if work.done:
            flash(_("Saved."), "info")
            return redirect(url_for("admin.unit", unit_id=unit.id))
    errors = rename.errors or move.errors or merge.errors
    return _unit_page(unit, rename, move, merge, 400 if errors else 200)


def _merged_message(moved: dict, target: Unit) -> str:
    return _(
        "“%(source)s” is merged into “%(target)s”: %(members)d members, %(liaisons)d "
        "liaisons and %(units)d units below it moved over.",
        source=moved["from"],
        target=target.name,
        members=moved["members"],
        liaisons=moved["liaisons"],
        units=len(moved["sub_units"]),
    )


@bp.post("/units/<int:unit_id>/<any(deactivate, reactivate):action>")
def unit_active(unit_id: int, action: str):
    unit = db.get_or_404(Unit, unit_id)
    if ActionForm().validate_on_submit():
        with unit_of_work() as work:
            set_unit_active(unit, action == "reactivate")
        if work.done:
            flash(
                _("“%(name)s” is active again.", name=unit.name)
                if action == "reactivate"
                else _(
                    "“%(name)s” is deactivated: kept with its members and history, offered "
                    "nowhere.",
                    name=unit.name,
                ),
                "info",
            )
    return redirect(url_for("admin.unit", unit_id=unit.id))


@bp.post("/units/<int:unit_id>/liaisons/<int:user_id>/remove")
def remove_liaison_view(unit_id: int, user_id: int):
    unit = db.get_or_404(Unit, unit_id)
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        remove_liaison(unit, user)
        db.session.commit()
        flash(_("Removed."), "info")
    return redirect(url_for("admin.units"))
