"""The outbox (the campaigns service's tables come with its features).

Revision ID: 0001
Revises:
"""
from crm_common.migrations import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    from alembic import op

    create_outbox_table(op)


def downgrade():
    from alembic import op

    op.drop_table("outbox")
