"""The unit of work: commit on success; a broken rule rolls back and is shown in the user's
language (on the form's field, or flashed); anything else rolls back and goes up."""

import click
import pytest
from flask import get_flashed_messages
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField

from webapp.db import db
from webapp.errors import Conflict, InvalidInput, NeedsConfirmation
from webapp.people.models import Unit, UnitKind
from webapp.people.units import create_unit
from webapp.work import command_unit_of_work, unit_of_work


class NameForm(FlaskForm):
    name = StringField()


def units() -> list[str]:
    db.session.rollback()
    return list(db.session.scalars(select(Unit.name)))


def test_success_commits(app):
    with app.test_request_context(), unit_of_work() as work:
        create_unit("大瓦窑村", UnitKind.VILLAGE)
    assert work.done and units() == ["大瓦窑村"]


def test_a_broken_rule_rolls_back_and_shows_on_the_field(app):
    with app.test_request_context(method="POST"):
        form = NameForm(meta={"csrf": False})
        with unit_of_work(form) as work:
            create_unit("大瓦窑村", UnitKind.VILLAGE)
            raise InvalidInput("名称不能为空。", field="name")
        assert not work.done and form.name.errors == ["名称不能为空。"]
    assert units() == []


def test_without_a_form_the_message_is_flashed(app):
    with app.test_request_context():
        with unit_of_work() as work:
            create_unit("大瓦窑村", UnitKind.VILLAGE)
            raise Conflict("该单位已存在。")
        assert isinstance(work.error, Conflict)
        assert get_flashed_messages(with_categories=True) == [("error", "该单位已存在。")]
    assert units() == []


def test_warnings_to_confirm_are_handed_back_not_shown(app):
    with app.test_request_context():
        with unit_of_work() as work:
            create_unit("大瓦窑村", UnitKind.VILLAGE)
            raise NeedsConfirmation(["张三同时参加另一期。"])
        assert work.warnings == ["张三同时参加另一期。"]
        assert get_flashed_messages() == []
    assert units() == []


def test_any_other_error_rolls_back_and_goes_up(app):
    with app.test_request_context(), pytest.raises(ZeroDivisionError), unit_of_work():
        create_unit("大瓦窑村", UnitKind.VILLAGE)
        1 / 0  # noqa: B018
    assert units() == []


def test_a_command_ends_with_the_rule_it_broke(app):
    with pytest.raises(click.ClickException, match="该单位已存在。"), command_unit_of_work():
        create_unit("大瓦窑村", UnitKind.VILLAGE)
        raise Conflict("该单位已存在。")
    assert units() == []
    with command_unit_of_work():
        create_unit("小瓦窑村", UnitKind.VILLAGE)
    assert units() == ["小瓦窑村"]
