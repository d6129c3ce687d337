"""The dashboard's aggregates, kept from lead and campaign events.

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
        "processed_events",
        sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )
    op.create_table(
        "lead_facts",
        sa.Column("lead_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("created_day", sa.Date),
        sa.Column("source", sa.String(100)),
        sa.Column("status", sa.String(20)),
        sa.Column("value", sa.Numeric(14, 2), nullable=False, server_default="0"),
        sa.Column("closed_day", sa.Date),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("version", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "daily_leads",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("created", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_now_closed", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "daily_closed",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("closed_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("revenue", sa.Numeric(16, 2), nullable=False, server_default="0"),
    )
    op.create_table(
        "campaign_days",
        sa.Column("meta_campaign_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("clicks", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("spend", sa.Numeric(16, 2), nullable=False, server_default="0"),
    )
    op.create_index("campaign_days_day", "campaign_days", ["day"])


def downgrade():
    for table in ("campaign_days", "daily_closed", "daily_leads", "lead_facts",
                  "processed_events"):
        op.drop_table(table)
