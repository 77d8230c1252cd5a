"""outgoing event webhooks: an admin's webhook (kind events, for the whole site) names the
events it wants; its deliveries are outbox rows of kind event

Revision ID: 8a9e62c48b6d
Revises: 5383ef8b88a8
Create Date: 2026-12-01 05:25:00

"""
from alembic import op
import sqlalchemy as sa

OLD_WEBHOOK_KINDS = ("generic", "wecom", "dingtalk")
NEW_WEBHOOK_KINDS = OLD_WEBHOOK_KINDS + ("events",)
OLD_DELIVERY_KINDS = ("reminder", "notice", "digest", "mention", "login")
NEW_DELIVERY_KINDS = OLD_DELIVERY_KINDS + ("event",)
OLD_SCOPE = "(series_id IS NOT NULL) <> (unit_id IS NOT NULL)"
NEW_SCOPE = (
    "(kind = 'events' AND series_id IS NULL AND unit_id IS NULL) OR "
    "(kind <> 'events' AND (series_id IS NOT NULL) <> (unit_id IS NOT NULL))"
)


def _check(column, values):
    return "%s IN (%s)" % (column, ", ".join(f"'{value}'" for value in values))


# revision identifiers, used by Alembic.
revision = '8a9e62c48b6d'
down_revision = '5383ef8b88a8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook', schema=None) as batch_op:
        batch_op.add_column(sa.Column('events', sa.String(length=300), nullable=True))
        batch_op.drop_constraint(op.f('ck_webhook_webhook_kind'), type_='check')
        batch_op.drop_constraint(op.f('ck_webhook_series_xor_unit'), type_='check')
        batch_op.create_check_constraint('webhook_kind', _check('kind', NEW_WEBHOOK_KINDS))
        batch_op.create_check_constraint('scope_by_kind', NEW_SCOPE)
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_delivery_delivery_kind'), type_='check')
        batch_op.create_check_constraint('delivery_kind', _check('kind', NEW_DELIVERY_KINDS))


def downgrade():
    op.execute("DELETE FROM delivery WHERE kind = 'event'")
    op.execute("DELETE FROM webhook WHERE kind = 'events'")
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_delivery_delivery_kind'), type_='check')
        batch_op.create_check_constraint('delivery_kind', _check('kind', OLD_DELIVERY_KINDS))
    with op.batch_alter_table('webhook', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_webhook_scope_by_kind'), type_='check')
        batch_op.drop_constraint(op.f('ck_webhook_webhook_kind'), type_='check')
        batch_op.create_check_constraint('webhook_kind', _check('kind', OLD_WEBHOOK_KINDS))
        batch_op.create_check_constraint('series_xor_unit', OLD_SCOPE)
        batch_op.drop_column('events')
