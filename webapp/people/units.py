"""Units (the tree of townships, villages, offices) and their liaisons (联络员)."""

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

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
    if find_unit(name, parent) is not None:
        raise Conflict(_("A unit called “%(name)s” already exists here.", name=name))
    unit = Unit(name=name, kind=kind, parent_id=parent_id, parent=parent)
    db.session.add(unit)
    db.session.flush()
    return unit


def find_unit(name: str, parent: Unit | None = None) -> Unit | None:
    """Return the unit called name directly under parent (or at the top level)."""
    parent_clause = Unit.parent_id.is_(None) if parent is None else Unit.parent_id == parent.id
    return db.session.scalar(select(Unit).where(Unit.name == clean_line(name), parent_clause))


def unit_tree() -> list[tuple[Unit, int]]:
    """Return every unit with its depth, parents before children, siblings in natural
    order (第二 before 第十; liaisons loaded too)."""
    units = db.session.scalars(
        select(Unit).options(selectinload(Unit.liaisons)).order_by(Unit.id)
    ).all()
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
    db.session.flush()


def remove_liaison(unit: Unit, user: User) -> None:
    """The user no longer acts as the unit's liaison."""
    if user in unit.liaisons:
        unit.liaisons.remove(user)
    db.session.flush()
