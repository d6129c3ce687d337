"""Queries on the tasks table (the only place that builds them)."""
import sqlalchemy as sa

from crm_common.ids import parse_id
from tasks.models import Task

# low < medium < high, so `sort=-priority` puts the most urgent first
# (their names in alphabetical order would put "medium" last). The index
# tasks_priority_rank is on this expression (models.PRIORITY_RANK_SQL): keep
# the two alike, or the sort stops reading it.
PRIORITY_RANK = sa.case({"low": 1, "medium": 2, "high": 3}, value=Task.priority)

# Sort keys the API offers, by their snake_case name. `due_date` sorts on the
# moment the due date denotes, whichever kind it was given in.
SORT_COLUMNS = {
    "due_date": Task.due_moment, "title": Task.title, "priority": PRIORITY_RANK,
    "created_at": Task.created_at, "updated_at": Task.updated_at,
    "completed_at": Task.completed_at,
}
NULLABLE_SORTS = frozenset({"due_date", "completed_at"})
DEFAULT_SORT = "due_date"


class TaskRepository:
    def __init__(self, session):
        self.session = session

    def get(self, task_id, for_update=False):
        key = parse_id(task_id)
        if key is None:
            return None
        query = sa.select(Task).where(Task.id == key)
        if for_update:
            query = query.with_for_update()
        return self.session.execute(query).scalar_one_or_none()

    def add(self, task):
        self.session.add(task)
        self.session.flush()
        return task

    def delete(self, task):
        self.session.delete(task)
        self.session.flush()

    def open_tasks_of(self, related_to_type, related_to_id):
        """The not-completed tasks related to one record, locked: a task
        completed meanwhile drops out (the lock re-reads the row)."""
        return self.session.execute(
            sa.select(Task).where(Task.related_to_type == related_to_type,
                                  Task.related_to_id == related_to_id, sa.not_(Task.completed))
            .order_by(Task.id).with_for_update()).scalars().all()

    def search(self, now, completed=None, priority=None, related_to_type=None, related_to_id=None,
               overdue=None, sort=DEFAULT_SORT, limit=100, offset=0):
        conditions = []
        if completed is not None:
            conditions.append(Task.completed if completed else sa.not_(Task.completed))
        if priority:
            conditions.append(Task.priority == priority)
        if related_to_type:
            conditions.append(Task.related_to_type == related_to_type)
        if related_to_id:
            conditions.append(Task.related_to_id == related_to_id)
        if overdue is True:
            conditions.append(sa.and_(sa.not_(Task.completed), Task.due_moment < now))
        elif overdue is False:
            conditions.append(sa.or_(Task.completed, Task.due_moment.is_(None),
                                     Task.due_moment >= now))

        name = sort.lstrip("-")
        descending = sort.startswith("-")
        column = SORT_COLUMNS[name]
        order = column.desc() if descending else column.asc()
        if name in NULLABLE_SORTS:
            # Tasks without a due date (or not completed) last, either way.
            # Only where NULL can occur: on a NOT NULL column NULLS LAST would
            # stop PostgreSQL from reading the column's index in order.
            order = order.nulls_last()
        tiebreak = Task.id.desc() if descending else Task.id.asc()

        total = self.session.execute(
            sa.select(sa.func.count()).select_from(Task).where(*conditions)).scalar()
        rows = self.session.execute(
            sa.select(Task).where(*conditions).order_by(order, tiebreak)
            .limit(limit).offset(offset)).scalars().all()
        return rows, total
