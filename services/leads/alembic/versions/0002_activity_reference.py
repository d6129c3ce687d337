"""Activities written by the system for a fact elsewhere (a conversion) carry
a reference, unique per lead, so recording the same fact twice adds nothing.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("activities", sa.Column("reference", sa.String(100)))
    op.create_index("activities_lead_reference", "activities", ["lead_id", "reference"],
                    unique=True, postgresql_where=sa.text("reference IS NOT NULL"))


def downgrade():
    op.drop_index("activities_lead_reference", "activities")
    op.drop_column("activities", "reference")
