"""`flask demo load`: the Lugouqiao cloud classroom as demo data."""

import click
from flask.cli import AppGroup

from webapp.db import utcnow
from webapp.demo.services import load_demo
from webapp.work import command_unit_of_work

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
def load_command():
    """Load the Lugouqiao cloud classroom demo (idempotent) and print the demo accounts."""
    with command_unit_of_work():
        accounts = load_demo(now=utcnow())
    click.echo("Demo data ready: 卢沟桥乡基层党员干部能力提升研修班")
    click.echo("Demo accounts (log in with the email or mobile number):")
    for account in accounts:
        click.echo(f"  {account.role.value:<12} {account.login:<26} password: {account.password}")
