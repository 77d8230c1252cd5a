"""admin: an audit log of who changed what; settings an admin changes at run time (their
history is the audit log); units can be deactivated (kept, offered nowhere)

Revision ID: d701f986ceae
Revises: d173e8fac2c1
Create Date: 2026-12-01 04:41:09.514572

"""
from alembic import op
import sqlalchemy as sa

import webapp.text


# revision identifiers, used by Alembic.
revision = 'd701f986ceae'
down_revision = 'd173e8fac2c1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', webapp.text.LineText(length=100), nullable=True),
    sa.Column('via', sa.Enum('web', 'api', 'cli', 'system', name='audit_via', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=20), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('object_label', webapp.text.LineText(length=300), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user.id'], name=op.f('fk_audit_entry_actor_id_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_audit_entry_series_id_series'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entry'))
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entry_actor_id_at', ['actor_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_at'), ['at'], unique=False)
        batch_op.create_index('ix_audit_entry_object', ['object_type', 'object_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_series_id'), ['series_id'], unique=False)

    op.create_table('setting',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['changed_by_id'], ['user.id'], name=op.f('fk_setting_changed_by_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_setting'))
    )
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_active', sa.Boolean(), server_default=sa.true(), nullable=False))



def downgrade():
    with op.batch_alter_table('unit', schema=None) as batch_op:
        batch_op.drop_column('is_active')

    op.drop_table('setting')
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_series_id'))
        batch_op.drop_index('ix_audit_entry_object')
        batch_op.drop_index(batch_op.f('ix_audit_entry_at'))
        batch_op.drop_index('ix_audit_entry_actor_id_at')

    op.drop_table('audit_entry')
