"""Leads, their activities, and the outbox.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from crm_common.migrations import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "leads",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(50)),
        sa.Column("company", sa.String(200)),
        sa.Column("job_title", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False, server_default="new"),
        sa.Column("source", sa.String(100), nullable=False, server_default="Manual"),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("value", sa.Numeric(14, 2), nullable=False, server_default="0"),
        sa.Column("owner_id", sa.String(100)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_interaction_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('new','contacted','qualified','proposal','closed')",
                           name="lead_status_known"),
        sa.CheckConstraint("score BETWEEN 0 AND 100", name="lead_score_range"),
        sa.CheckConstraint("value >= 0", name="lead_value_not_negative"),
        sa.CheckConstraint("email = lower(email)", name="lead_email_lower_case"),
    )
    # email is stored lower-cased, so this is a case-insensitive uniqueness rule
    # that holds under concurrent inserts.
    op.create_index("leads_email_key", "leads", ["email"], unique=True)
    for column in ("status", "source", "score", "owner_id", "created_at"):
        op.create_index("leads_%s_idx" % column, "leads", [column])
    # Substring search (ILIKE '%...%') on name, email and company.
    for column in ("name", "email", "company"):
        op.execute("CREATE INDEX leads_%s_trgm ON leads USING gin (%s gin_trgm_ops)"
                   % (column, column))

    op.create_table(
        "activities",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("lead_id", pg.UUID(as_uuid=True),
                  sa.ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('email_opened','page_visit','call','note_created','status_change','meeting')",
            name="activity_type_known"),
    )
    op.create_index("activities_lead_timeline", "activities",
                    ["lead_id", sa.text("timestamp DESC")])
    create_outbox_table(op)


def downgrade():
    op.drop_table("outbox")
    op.drop_table("activities")
    op.drop_table("leads")
