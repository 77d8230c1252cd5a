"""One unit of work for views and CLI commands: commit when the block succeeds; when a rule
of the product is broken (a DomainError), roll everything back and say why in the user's
language: on the form's field, above the form, as a flash message, or as the command's
error. Any other exception rolls back and goes on up (a 500 page, a traceback).

    with unit_of_work(form) as work:
        series = create_series(...)
    if work.done:
        return redirect(...)
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from flask import flash
from flask_wtf import FlaskForm

from webapp.db import db
from webapp.errors import DomainError, NeedsConfirmation


@dataclass
class Work:
    done: bool = False
    error: DomainError | None = None
    warnings: list[str] = field(default_factory=list)  # to confirm before trying again


def show_on_form(form: FlaskForm, error: DomainError) -> None:
    """The error on its field, or above the form."""
    target = getattr(form, error.field, None) if error.field else None
    if target is not None and hasattr(target, "errors"):
        target.errors = [*target.errors, error.message]
    else:
        form.form_errors.append(error.message)


@contextmanager
def unit_of_work(form: FlaskForm | None = None) -> Iterator[Work]:
    """For a view. A warning to confirm (NeedsConfirmation) is handed back in
    `work.warnings`, not shown: the page asks the question."""
    work = Work()
    try:
        yield work
    except NeedsConfirmation as error:
        db.session.rollback()
        work.error, work.warnings = error, error.warnings
    except DomainError as error:
        db.session.rollback()
        work.error = error
        if form is not None:
            show_on_form(form, error)
        else:
            flash(error.message, "error")
    except BaseException:
        db.session.rollback()
        raise
    else:
        db.session.commit()
        work.done = True


@contextmanager
def command_unit_of_work() -> Iterator[None]:
    """For a CLI command: a broken rule ends the command with its message (exit code 1)."""
    try:
        yield
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from error
    except BaseException:
        db.session.rollback()
        raise
    else:
        db.session.commit()
