"""`flask users …`: manage accounts from the command line."""

import click
from flask.cli import AppGroup

from webapp.db import db
from webapp.people.models import Role, Unit
from webapp.people.services import (
    create_user,
    find_user_by_identifier,
    grant_role,
    list_users,
    revoke_role,
    set_password,
)
from webapp.work import command_unit_of_work

users_cli = AppGroup("users", help="Manage user accounts.")

ROLE_CHOICE = click.Choice([role.value for role in Role])


def _user_or_fail(identifier: str):
    user = find_user_by_identifier(identifier)
    if user is None:
        raise click.ClickException(f"No account with email or mobile number {identifier!r}.")
    return user


@users_cli.command("create")
@click.option("--name", "display_name", required=True, help="Display name, e.g. 张三.")
@click.option("--email", help="Email address (email or phone is required).")
@click.option("--phone", help="Mobile number, e.g. 13800138000 or +8613800138000.")
@click.option("--role", "roles", type=ROLE_CHOICE, multiple=True, help="Role; repeat for several.")
@click.option("--unit-id", type=int, help="Id of the unit the user belongs to.")
@click.password_option(help="Password (asked for when not given).")
def create_command(display_name, email, phone, roles, unit_id, password):
    """Create a user account."""
    unit = None
    if unit_id is not None:
        unit = db.session.get(Unit, unit_id)
        if unit is None:
            raise click.ClickException(f"No unit with id {unit_id}.")
    with command_unit_of_work():
        user = create_user(
            display_name=display_name,
            email=email,
            phone=phone,
            password=password,
            roles=[Role(r) for r in roles] or [Role.PARTICIPANT],
            unit=unit,
        )
    click.echo(f"Created user {user.id} ({user.email or user.phone}): {sorted(user.roles)}")


@users_cli.command("set-password")
@click.argument("identifier")
@click.password_option(help="New password (asked for when not given).")
def set_password_command(identifier, password):
    """Set a user's password (by email or mobile number); their other sessions end."""
    user = _user_or_fail(identifier)
    with command_unit_of_work():
        set_password(user, password)
    click.echo(f"Password changed for {user.email or user.phone}.")


@users_cli.command("set-role")
@click.argument("identifier")
@click.argument("role", type=ROLE_CHOICE)
@click.option("--remove", is_flag=True, help="Take the role away instead of granting it.")
def set_role_command(identifier, role, remove):
    """Grant (or with --remove, revoke) a role."""
    user = _user_or_fail(identifier)
    action = revoke_role if remove else grant_role
    with command_unit_of_work():
        action(user, Role(role))
    click.echo(f"{user.email or user.phone}: {', '.join(sorted(user.roles)) or '(no roles)'}")


@users_cli.command("list")
@click.option("--role", type=ROLE_CHOICE, help="Only users with this role.")
def list_command(role):
    """List user accounts."""
    for user in list_users():
        if role and Role(role) not in user.roles:
            continue
        click.echo(
            f"{user.id}\t{user.display_name}\t{user.email or '-'}\t{user.phone or '-'}\t"
            f"{','.join(sorted(user.roles))}\t{'active' if user.is_active else 'inactive'}"
        )
