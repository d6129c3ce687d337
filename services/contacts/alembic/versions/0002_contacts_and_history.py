"""Contacts and their history.

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
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "contacts",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(200)),
        sa.Column("company", sa.String(200)),
        sa.Column("phone", sa.String(50)),
        sa.Column("notes", sa.Text),
        sa.Column("lead_id", pg.UUID(as_uuid=True)),
        sa.Column("last_contacted", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("email = lower(email)", name="contact_email_lower_case"),
    )
    # One contact per lead: concurrent conversions of a lead cannot make two.
    op.create_index("contacts_lead_id_key", "contacts", ["lead_id"], unique=True,
                    postgresql_where=sa.text("lead_id IS NOT NULL"))
    # Every sort the API offers reads an index.
    for column in ("name", "email", "role", "company", "created_at", "updated_at"):
        op.create_index("contacts_%s_idx" % column, "contacts", [column])
    op.create_index("contacts_last_contacted_idx", "contacts",
                    [sa.text("last_contacted DESC NULLS LAST")])
    # The company filter matches case-insensitively.
    op.create_index("contacts_company_lower_idx", "contacts", [sa.text("lower(company)")])
    # Substring search (ILIKE '%...%') on name, email and company.
    for column in ("name", "email", "company"):
        op.execute("CREATE INDEX contacts_%s_trgm ON contacts USING gin (%s gin_trgm_ops)"
                   % (column, column))

    op.create_table(
        "contact_history",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("contact_id", pg.UUID(as_uuid=True),
                  sa.ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('email_opened','page_visit','call','note_created','status_change','meeting')",
            name="history_type_known"),
    )
    op.create_index("contact_history_timeline", "contact_history",
                    ["contact_id", sa.text("timestamp DESC")])


def downgrade():
    op.drop_table("contact_history")
    op.drop_table("contacts")
