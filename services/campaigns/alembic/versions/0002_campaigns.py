"""Campaigns (filled by the Meta sync).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "campaigns",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("meta_campaign_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(400), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("objective", sa.String(100)),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The sync upserts on Meta's id; the list filters on status.
    op.create_index("campaigns_meta_campaign_id_key", "campaigns", ["meta_campaign_id"],
                    unique=True)
    op.create_index("campaigns_status_idx", "campaigns", ["status"])


def downgrade():
    op.drop_table("campaigns")
