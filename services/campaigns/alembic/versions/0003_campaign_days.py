"""Daily insight rows per campaign (one per campaign per day, upserted by the sync).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "campaign_days",
        sa.Column("campaign_id", pg.UUID(as_uuid=True),
                  sa.ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("spend", sa.Numeric, nullable=False, server_default="0"),
        sa.Column("impressions", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("clicks", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("leads", sa.Integer, nullable=False, server_default="0"),
        sa.Column("revenue", sa.Numeric, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # The sync upserts on it; the list sums a date range of one campaign with it.
        sa.PrimaryKeyConstraint("campaign_id", "date", name="campaign_days_pkey"),
    )
    op.create_index("campaign_days_date_idx", "campaign_days", ["date"])


def downgrade():
    op.drop_table("campaign_days")
