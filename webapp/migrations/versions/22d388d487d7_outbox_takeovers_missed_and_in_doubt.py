"""outbox: takeovers, missed and in-doubt outcomes

Revision ID: 22d388d487d7
Revises: abb12148a0d8
Create Date: 2026-11-30 11:04:41.307479

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '22d388d487d7'
down_revision = 'abb12148a0d8'
branch_labels = None
depends_on = None


OLD_STATUSES = ("pending", "claimed", "sent", "failed", "skipped", "cancelled")
NEW_STATUSES = OLD_STATUSES + ("missed", "in_doubt")


def _status_check(values):
    return "status IN (%s)" % ", ".join(f"'{value}'" for value in values)


def upgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('taken_from', sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column('taken_while_sending', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.drop_constraint(op.f('ck_delivery_delivery_status'), type_='check')
        batch_op.create_check_constraint('delivery_status', _status_check(NEW_STATUSES))
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.alter_column('taken_while_sending', server_default=None)


def downgrade():
    op.execute(
        "UPDATE delivery SET status = 'skipped' WHERE status IN ('missed', 'in_doubt')"
    )
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_delivery_delivery_status'), type_='check')
        batch_op.create_check_constraint('delivery_status', _status_check(OLD_STATUSES))
        batch_op.drop_column('taken_while_sending')
        batch_op.drop_column('taken_from')
