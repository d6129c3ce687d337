"""The tasks service's tables. Nothing outside this service reads them."""
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PRIORITIES = ("low", "medium", "high")
RELATED_TYPES = ("lead", "campaign", "general")

# The moment a task is due, for sorting and for "overdue": a timestamp is its
# own moment; a date means "by the end of that UTC day", i.e. its last
# microsecond, so `due_moment < now` is exactly "due before today" for a date
# and "due before now" for a timestamp. Computed in timestamp arithmetic,
# which (unlike timestamptz arithmetic) PostgreSQL accepts as immutable.
DUE_MOMENT = ("coalesce(due_at, ((due_date + 1)::timestamp - interval '1 microsecond')"
              " AT TIME ZONE 'UTC')")
# `sort=priority` orders by this rank, as tasks.repository.PRIORITY_RANK
# writes it (the index on it is only read for the very same expression).
PRIORITY_RANK_SQL = "(CASE priority WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 END)"


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        sa.CheckConstraint("char_length(title) >= 1", name="task_title_not_empty"),
        sa.CheckConstraint("priority IN ('low','medium','high')", name="task_priority_known"),
        sa.CheckConstraint("related_to_type IN ('lead','campaign','general')",
                           name="task_related_type_known"),
        sa.CheckConstraint("(related_to_type = 'general') = (related_to_id IS NULL)",
                           name="task_related_id_matches_type"),
        sa.CheckConstraint("due_date IS NULL OR due_at IS NULL", name="task_due_one_kind"),
        sa.CheckConstraint("completed = (completed_at IS NOT NULL)",
                           name="task_completed_at_matches"),
        # The default sort, and each filter followed by it (so a filtered
        # list reads its first page in order); overdue is `NOT completed AND
        # due_moment < now`, a range on tasks_completed_due.
        sa.Index("tasks_due", "due_moment"),
        sa.Index("tasks_completed_due", "completed", "due_moment"),
        sa.Index("tasks_priority_due", "priority", "due_moment"),
        sa.Index("tasks_related_to_type_due", "related_to_type", "due_moment"),
        sa.Index("tasks_related_id", "related_to_id"),
        # Every other sort of the list reads an index in its order too (the
        # tiebreaker id after it); a nullable column once per direction,
        # since NULLs come last both ways (migration 0004).
        sa.Index("tasks_due_desc", sa.text("due_moment DESC NULLS LAST")),
        sa.Index("tasks_created", "created_at"),
        sa.Index("tasks_updated", "updated_at"),
        sa.Index("tasks_title", "title"),
        sa.Index("tasks_priority_rank", sa.text(PRIORITY_RANK_SQL), "id"),
        sa.Index("tasks_completed_at", "completed_at"),
        sa.Index("tasks_completed_at_desc", sa.text("completed_at DESC NULLS LAST")),
    )

    id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    # The due date keeps the kind the client sent: a date, or a timestamp.
    due_date: Mapped[sa.Date | None] = mapped_column(sa.Date)
    due_at: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime(timezone=True))
    due_moment: Mapped[sa.DateTime | None] = mapped_column(
        sa.DateTime(timezone=True), sa.Computed(DUE_MOMENT, persisted=True))
    priority: Mapped[str] = mapped_column(sa.String(10), default="medium")
    completed: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    completed_at: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime(timezone=True))
    related_to_type: Mapped[str] = mapped_column(sa.String(20), default="general")
    related_to_id: Mapped[uuid.UUID | None] = mapped_column(pg.UUID(as_uuid=True))
    created_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
