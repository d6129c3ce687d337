"""The outcome of the latest Meta sync (one row), shown in the settings.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sync_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text),
        sa.CheckConstraint("id = 1", name="sync_state_single_row"),
        sa.CheckConstraint("status IN ('running', 'ok', 'error')", name="sync_state_status_known"),
    )


def downgrade():
    op.drop_table("sync_state")
