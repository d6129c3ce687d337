"""An index for every sort the contact list offers (bench/indexes.py).

The list orders by the sort column, then id, NULLs last either way: a
nullable column needs an index per direction, since `DESC NULLS LAST` is not
the ascending index read backwards. `role` has few values, so it gets (role,
id) both ways (a page is read in its order, not sorted out of a group of
equal roles); that replaces the single-column role index.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (name, columns) as the model declares them.
INDEXES = (
    ("contacts_company_desc_idx", [sa.text("company DESC NULLS LAST")]),
    ("contacts_role_id_idx", ["role", "id"]),
    ("contacts_role_id_desc_idx", [sa.text("role DESC NULLS LAST"), sa.text("id DESC")]),
    ("contacts_last_contacted_asc_idx", ["last_contacted"]),
)


def upgrade():
    for name, columns in INDEXES:
        op.create_index(name, "contacts", columns)
    op.drop_index("contacts_role_idx", table_name="contacts")


def downgrade():
    op.create_index("contacts_role_idx", "contacts", ["role"])
    for name, _ in INDEXES:
        op.drop_index(name, table_name="contacts")
