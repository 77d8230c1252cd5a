from sqlalchemy import select

from tests.helpers import NOW
from webapp.db import db
from webapp.people.models import Role, User
from webapp.people.services import (
    authenticate,
)


def run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=list(args), input=input)


def test_users_create_makes_an_account_that_can_log_in(app):
    result = run(
        app,
        "users",
        "create",
        "--name",
        "王建国",
        "--email",
        "cadre@example.org",
        "--phone",
        "13910000001",
        "--role",
        "organizer",
        "--password",
        "s3cret-pass",
    )
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    user = authenticate("13910000001", "s3cret-pass", now=NOW)
    assert user.display_name == "王建国" and user.roles == {Role.ORGANIZER}


def test_users_create_prompts_for_the_password(app):
    result = run(
        app,
        "users",
        "create",
        "--name",
        "李春梅",
        "--email",
        "li@example.org",
        input="typed-password\ntyped-password\n",
    )
    assert result.exit_code == 0, result.output
    assert authenticate("li@example.org", "typed-password", now=NOW) is not None


def test_users_create_reports_a_duplicate_clearly(app, make_user):
    make_user(email="cadre@example.org")
    result = run(
        app,
        "users",
        "create",
        "--name",
        "重复",
        "--email",
        "cadre@example.org",
        "--password",
        "long-enough",
    )
    assert result.exit_code == 1
    assert "cadre@example.org" in result.output
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_users_set_password_and_set_role(app, make_user):
    make_user(email="cadre@example.org")
    assert (
        run(
            app, "users", "set-password", "cadre@example.org", "--password", "brand-new-pass"
        ).exit_code
        == 0
    )
    assert run(app, "users", "set-role", "cadre@example.org", "admin").exit_code == 0
    assert (
        run(app, "users", "set-role", "cadre@example.org", "participant", "--remove").exit_code == 0
    )
    db.session.expire_all()
    user = authenticate("cadre@example.org", "brand-new-pass", now=NOW)
    assert user.roles == {Role.ADMIN}


def test_users_commands_report_an_unknown_account(app):
    result = run(app, "users", "set-role", "nobody@example.org", "admin")
    assert result.exit_code == 1 and "No account" in result.output


def test_demo_load_prints_the_demo_accounts(app):
    result = run(app, "demo", "load")
    assert result.exit_code == 0, result.output
    for text in (
        "admin@example.org",
        "organizer@example.org",
        "participant@example.org",
        "demo-admin-2026",
    ):
        assert text in result.output
