"""api: personal API tokens (only their hash is stored), scoped, expiring, revocable

Revision ID: 5383ef8b88a8
Revises: d701f986ceae
Create Date: 2026-12-01 04:53:48.442786

"""
from alembic import op
import sqlalchemy as sa

import webapp.text


# revision identifiers, used by Alembic.
revision = '5383ef8b88a8'
down_revision = 'd701f986ceae'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', webapp.text.LineText(length=100), nullable=False),
    sa.Column('scope', sa.Enum('read', 'write', name='api_scope', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('hint', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_from', sa.String(length=64), nullable=True),
    sa.CheckConstraint('expires_at > created_at', name=op.f('ck_api_token_expires_after_creation')),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_api_token_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash'))
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_user_id'), ['user_id'], unique=False)



def downgrade():
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_user_id'))

    op.drop_table('api_token')
