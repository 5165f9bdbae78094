"""operator mode: a run's question and answer

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 19:14:58.395757
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prompt', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('answer', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('answer')
        batch_op.drop_column('prompt')
