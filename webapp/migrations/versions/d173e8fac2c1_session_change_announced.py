"""sessions: a change keeps when participants were told of it (a change notice went out), so
the session page's 原定 is the time they had, not a time in between they never saw

Revision ID: d173e8fac2c1
Revises: deb7c9a62385
Create Date: 2026-12-01 02:15:19.480083

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd173e8fac2c1'
down_revision = 'deb7c9a62385'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('session_change', schema=None) as batch_op:
        batch_op.add_column(sa.Column('announced_at', sa.DateTime(timezone=True), nullable=True))
    # Changes from before: told when they were made (as this release assumed), unless their
    # session's notice is still waiting to be composed.
    op.execute(
        """
        UPDATE session_change SET announced_at = changed_at
        WHERE NOT EXISTS (
            SELECT 1 FROM notification
            WHERE notification.session_id = session_change.session_id
              AND notification.status = 'pending'
        )
        """
    )


def downgrade():
    with op.batch_alter_table('session_change', schema=None) as batch_op:
        batch_op.drop_column('announced_at')
