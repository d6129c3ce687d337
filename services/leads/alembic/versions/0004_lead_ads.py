"""Meta lead ads: the intake of lead-gen submissions, and their ids on leads.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

META_COLUMNS = ("meta_leadgen_id", "meta_form_id", "meta_ad_id", "meta_campaign_id",
                "meta_page_id")


def upgrade():
    for name in META_COLUMNS:
        op.add_column("leads", sa.Column(name, sa.String(64)))
    op.create_index("leads_meta_leadgen_id", "leads", ["meta_leadgen_id"], unique=True,
                    postgresql_where=sa.text("meta_leadgen_id IS NOT NULL"))
    op.create_table(
        "lead_ad_submissions",
        sa.Column("leadgen_id", sa.String(64), primary_key=True),
        sa.Column("page_id", sa.String(64)),
        sa.Column("form_id", sa.String(64)),
        sa.Column("ad_id", sa.String(64)),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("graph_lead", pg.JSONB),
        sa.Column("lead_id", pg.UUID(as_uuid=True)),
        sa.Column("outcome", sa.String(10)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending','done','failed')", name="lead_ad_status_known"),
    )
    op.create_index("lead_ad_submissions_due", "lead_ad_submissions", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("lead_ad_submissions_status", "lead_ad_submissions",
                    ["status", sa.text("received_at DESC")])


def downgrade():
    op.drop_table("lead_ad_submissions")
    op.drop_index("leads_meta_leadgen_id", table_name="leads")
    for name in META_COLUMNS:
        op.drop_column("leads", name)
