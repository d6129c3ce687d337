"""An index for every sort the lead list offers (bench/indexes.py).

The list orders by the sort column, then id as the tiebreaker, and puts NULLs
last either way. A column with few values (status, source, score, value: 0
is the default) gets (column, id), so a page is read in exactly its order
instead of sorting a whole group of equal values; a nullable column gets an
index per direction, since `DESC NULLS LAST` is not the ascending index read
backwards. These replace the single-column status, source and score indexes,
which the composite ones serve as well (filters and counts).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (name, columns) as the model declares them.
INDEXES = (
    ("leads_status_id_idx", ["status", "id"]),
    ("leads_source_id_idx", ["source", "id"]),
    ("leads_score_id_idx", ["score", "id"]),
    ("leads_value_id_idx", ["value", "id"]),
    ("leads_name_idx", ["name"]),
    ("leads_updated_at_idx", ["updated_at"]),
    ("leads_company_idx", ["company"]),
    ("leads_company_desc_idx", [sa.text("company DESC NULLS LAST")]),
    ("leads_last_interaction_at_idx", ["last_interaction_at"]),
    ("leads_last_interaction_at_desc_idx", [sa.text("last_interaction_at DESC NULLS LAST")]),
)
REPLACED = ("status", "source", "score")


def upgrade():
    for name, columns in INDEXES:
        op.create_index(name, "leads", columns)
    for column in REPLACED:
        op.drop_index("leads_%s_idx" % column, table_name="leads")


def downgrade():
    for column in REPLACED:
        op.create_index("leads_%s_idx" % column, "leads", [column])
    for name, _ in INDEXES:
        op.drop_index(name, table_name="leads")
