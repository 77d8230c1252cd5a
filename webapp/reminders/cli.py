"""`flask reminders …`: run the worker's sweeps by hand."""

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from webapp.db import db, utcnow
from webapp.reminders.dispatch import dispatch_due
from webapp.reminders.models import Delivery, DeliveryStatus
from webapp.reminders.notices import (
    compose_notices,
)
from webapp.reminders.outbox import (
    this_worker_id,
)
from webapp.reminders.planning import (
    plan_reminders,
)

reminders_cli = AppGroup("reminders", help="Reminders and notifications.")


@reminders_cli.command("send-due")
@click.option("--dry-run", is_flag=True, help="Only show what is due; send nothing.")
def send_due_command(dry_run):
    """Plan reminders, compose notices and send everything that is due."""
    now = utcnow()
    planned = plan_reminders(now=now)
    composed = compose_notices(now=now)
    if dry_run:
        due = db.session.execute(
            select(Delivery.kind, func.count())
            .where(Delivery.status == DeliveryStatus.PENDING, Delivery.due_at <= now)
            .group_by(Delivery.kind)
        ).all()
        db.session.rollback()
        click.echo(f"would plan {planned} reminder(s) and compose {composed} notice(s)")
        for kind, count in due:
            click.echo(f"due now: {count} {kind.value}(s)")
        return
    db.session.commit()
    stats = dispatch_due(worker_id=f"cli-{this_worker_id()}")
    click.echo(
        f"planned {planned}, composed {composed}, claimed {stats.claimed}: "
        + ", ".join(f"{status.value} {count}" for status, count in stats.by_status.items())
    )
