"""Tasks.

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
        "tasks",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("due_date", sa.Date),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        # A date is due by the end of its UTC day (see tasks.models.DUE_MOMENT).
        sa.Column("due_moment", sa.DateTime(timezone=True), sa.Computed(
            "coalesce(due_at, ((due_date + 1)::timestamp - interval '1 microsecond')"
            " AT TIME ZONE 'UTC')", persisted=True)),
        sa.Column("priority", sa.String(10), nullable=False, server_default="medium"),
        sa.Column("completed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("related_to_type", sa.String(20), nullable=False, server_default="general"),
        sa.Column("related_to_id", pg.UUID(as_uuid=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("char_length(title) >= 1", name="task_title_not_empty"),
        sa.CheckConstraint("priority IN ('low','medium','high')", name="task_priority_known"),
        sa.CheckConstraint("related_to_type IN ('lead','campaign','general')",
                           name="task_related_type_known"),
        sa.CheckConstraint("(related_to_type = 'general') = (related_to_id IS NULL)",
                           name="task_related_id_matches_type"),
        sa.CheckConstraint("due_date IS NULL OR due_at IS NULL", name="task_due_one_kind"),
        sa.CheckConstraint("completed = (completed_at IS NOT NULL)",
                           name="task_completed_at_matches"),
    )
    # The default sort (due first, undated last), and each filter followed by
    # it; overdue (`NOT completed AND due_moment < now`) is a range on
    # tasks_completed_due; tasks_related_id also finds a deleted lead's tasks.
    op.create_index("tasks_due", "tasks", ["due_moment"])
    for column in ("completed", "priority", "related_to_type"):
        op.create_index("tasks_%s_due" % column, "tasks", [column, "due_moment"])
    op.create_index("tasks_related_id", "tasks", ["related_to_id"])


def downgrade():
    op.drop_table("tasks")
