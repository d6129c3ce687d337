"""An index for every sort the task list offers (bench/indexes.py).

The list orders by the sort column, then id, undated (or not completed)
tasks last either way: a nullable column needs an index per direction, since
`DESC NULLS LAST` is not the ascending index read backwards. `priority` sorts
on its rank (tasks.repository.PRIORITY_RANK), so the index is on that very
expression, with the id.

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
    ("tasks_due_desc", [sa.text("due_moment DESC NULLS LAST")]),
    ("tasks_created", ["created_at"]),
    ("tasks_updated", ["updated_at"]),
    ("tasks_title", ["title"]),
    ("tasks_priority_rank", [sa.text("(CASE priority WHEN 'low' THEN 1 WHEN 'medium' THEN 2"
                                     " WHEN 'high' THEN 3 END)"), "id"]),
    ("tasks_completed_at", ["completed_at"]),
    ("tasks_completed_at_desc", [sa.text("completed_at DESC NULLS LAST")]),
)


def upgrade():
    for name, columns in INDEXES:
        op.create_index(name, "tasks", columns)


def downgrade():
    for name, _ in INDEXES:
        op.drop_index(name, table_name="tasks")
