"""Units (the tree of townships, villages, offices) and their liaisons (联络员)."""

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from webapp import audit, events
from webapp.db import db
from webapp.errors import Conflict, InvalidInput
from webapp.people.models import (
    Unit,
    UnitKind,
    User,
    unit_liaison,
)
from webapp.text import clean_line, natural_key


def create_unit(name: str, kind: UnitKind, parent: Unit | None = None) -> Unit:
    """Add a unit under parent; names are unique among siblings."""
    name = clean_line(name)
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    parent_id = parent.id if parent else None
    _check_free_name(name, parent)
    if parent is not None and not parent.is_active:
        raise Conflict(_("“%(name)s” is deactivated.", name=parent.name))
    unit = Unit(name=name, kind=kind, parent_id=parent_id, parent=parent)
    db.session.add(unit)
    db.session.flush()
    _record_unit("unit.created", unit, {"parent": parent.name if parent else None})
    return unit


def find_unit(name: str, parent: Unit | None = None) -> Unit | None:
    """Return the unit called name directly under parent (or at the top level)."""
    parent_clause = Unit.parent_id.is_(None) if parent is None else Unit.parent_id == parent.id
    return db.session.scalar(select(Unit).where(Unit.name == clean_line(name), parent_clause))


def unit_tree(*, with_inactive: bool = False) -> list[tuple[Unit, int]]:
    """Return every active unit (or every unit) with its depth, parents before children,
    siblings in natural order (第二 before 第十; liaisons loaded too)."""
    query = select(Unit).options(selectinload(Unit.liaisons)).order_by(Unit.id)
    if not with_inactive:
        query = query.where(Unit.is_active.is_(True))
    units = db.session.scalars(query).all()
    children: dict[int | None, list[Unit]] = {}
    for unit in units:
        children.setdefault(unit.parent_id, []).append(unit)
    ordered: list[tuple[Unit, int]] = []

    def walk(parent_id: int | None, depth: int) -> None:
        for unit in sorted(children.get(parent_id, []), key=lambda u: natural_key(u.name)):
            ordered.append((unit, depth))
            walk(unit.id, depth + 1)

    walk(None, 0)
    return ordered


def unit_and_descendant_ids(unit: Unit) -> list[int]:
    """The unit's id and those of every unit below it (one query for the whole tree)."""
    pairs = db.session.execute(select(Unit.id, Unit.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for unit_id, parent_id in pairs:
        children.setdefault(parent_id, []).append(unit_id)
    found, stack = [], [unit.id]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def find_units_by_name(name: str) -> list[Unit]:
    """Every unit called name, wherever it is in the tree."""
    return list(db.session.scalars(select(Unit).where(Unit.name == clean_line(name))).all())


def liaison_unit_ids(user: User) -> list[int]:
    return list(
        db.session.scalars(select(unit_liaison.c.unit_id).where(unit_liaison.c.user_id == user.id))
    )


def is_liaison_for(user: User, unit: Unit) -> bool:
    """A liaison of a unit or of any unit above it."""
    own = set(liaison_unit_ids(user))
    current: Unit | None = unit
    while current is not None:
        if current.id in own:
            return True
        current = current.parent
    return False


def add_liaison(unit: Unit, user: User) -> None:
    """Make the user a liaison (联络员) of the unit."""
    if user not in unit.liaisons:
        unit.liaisons.append(user)
        _record_liaison("liaison.added", unit, user)
    db.session.flush()


def remove_liaison(unit: Unit, user: User) -> None:
    """The user no longer acts as the unit's liaison."""
    if user in unit.liaisons:
        unit.liaisons.remove(user)
        _record_liaison("liaison.removed", unit, user)
    db.session.flush()


def _record_liaison(action: str, unit: Unit, user: User) -> None:
    audit.record(
        action,
        object_type="unit",
        object_id=unit.id,
        label=unit.name,
        details={"user_id": user.id, "name": user.display_name},
    )


# --- the admin's tree: rename, move, merge, deactivate -----------------------------------------


def _record_unit(action: str, unit: Unit, details: dict | None = None) -> None:
    audit.record(action, object_type="unit", object_id=unit.id, label=unit.name, details=details)


def _check_free_name(name: str, parent: Unit | None, *, unit: Unit | None = None) -> None:
    existing = find_unit(name, parent)
    if existing is not None and existing is not unit:
        raise Conflict(_("A unit called “%(name)s” already exists here.", name=name), field="name")


def rename_unit(unit: Unit, name: str, kind: UnitKind) -> None:
    """Give the unit a new name (unique among its siblings) or kind."""
    name = clean_line(name) or ""
    if not name:
        raise InvalidInput(_("Please enter a name."), field="name")
    _check_free_name(name, unit.parent, unit=unit)
    old = {"name": unit.name, "kind": str(unit.kind)}
    if old == {"name": name, "kind": str(kind)}:
        return
    unit.name, unit.kind = name, kind
    _record_unit("unit.renamed", unit, {"name": [old["name"], name], "kind": [old["kind"], kind]})
    db.session.flush()


def move_unit(unit: Unit, parent: Unit | None) -> None:
    """Put the unit (with everything below it) under another unit, or at the top level."""
    if parent is not None and parent.id in unit_and_descendant_ids(unit):
        raise Conflict(_("A unit cannot be put under itself or under a unit below it."))
    if (parent.id if parent else None) == unit.parent_id:
        return
    if parent is not None and not parent.is_active:
        raise Conflict(_("“%(name)s” is deactivated.", name=parent.name))
    _check_free_name(unit.name, parent, unit=unit)
    old_parent = unit.parent
    unit.parent = parent
    db.session.flush()
    _record_unit(
        "unit.moved",
        unit,
        {
            "parent": [
                old_parent.name if old_parent else None,
                parent.name if parent else None,
            ]
        },
    )
    events.unit_moved.send(
        unit_id=unit.id,
        old_parent_id=old_parent.id if old_parent else None,
        new_parent_id=parent.id if parent else None,
    )


def merge_units(source: Unit, target: Unit) -> dict:
    """Fold `source` into `target`: its members, liaisons and sub-units, and (through the
    units_merged event) its quotas, robots and calendar links move over; then it is
    deleted. Returns what moved."""
    if source.id == target.id:
        raise Conflict(_("Choose two different units."))
    if target.id in unit_and_descendant_ids(source):
        raise Conflict(_("A unit cannot be merged into a unit below it."))
    if not target.is_active:
        raise Conflict(_("“%(name)s” is deactivated.", name=target.name))
    clashes = sorted(
        {child.name for child in source.children} & {child.name for child in target.children}
    )
    if clashes:
        raise Conflict(
            _(
                "Both units have a sub-unit called %(names)s: merge or rename those first.",
                names="、".join(f"“{name}”" for name in clashes),
            )
        )
    members = db.session.execute(
        update(User).where(User.unit_id == source.id).values(unit_id=target.id)
    ).rowcount
    liaisons = 0
    for liaison in list(source.liaisons):
        if liaison not in target.liaisons:
            target.liaisons.append(liaison)
            liaisons += 1
    children = list(source.children)
    for child in children:
        child.parent = target
    db.session.flush()
    moved = {
        "from": source.name,
        "members": members,
        "liaisons": liaisons,
        "sub_units": [child.name for child in children],
    }
    events.units_merged.send(source_id=source.id, target_id=target.id)
    _record_unit("unit.merged", target, moved)
    db.session.delete(source)
    db.session.flush()
    return moved


def set_unit_active(unit: Unit, active: bool) -> None:
    """Deactivate a unit (kept with its members and history, but offered nowhere: not in
    lists to choose from, not matched by an import) or bring it back."""
    if unit.is_active == active:
        return
    if not active and any(child.is_active for child in unit.children):
        raise Conflict(_("Deactivate or move the units below “%(name)s” first.", name=unit.name))
    if active and unit.parent is not None and not unit.parent.is_active:
        raise Conflict(_("Reactivate “%(name)s” first.", name=unit.parent.name))
    unit.is_active = active
    _record_unit("unit.reactivated" if active else "unit.deactivated", unit)
    db.session.flush()


def member_counts() -> dict[int, int]:
    """How many accounts each unit has directly (not counting units below it)."""
    query = select(User.unit_id, func.count()).where(User.unit_id.is_not(None))
    return dict(db.session.execute(query.group_by(User.unit_id)).all())
