"""When a lead was closed (won): revenue counts on its closing day.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("leads", sa.Column("closed_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE leads SET closed_at = updated_at WHERE status = 'closed'")


def downgrade():
    op.drop_column("leads", "closed_at")
