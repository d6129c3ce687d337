"""What the tasks service does: each function is one command in one
transaction (`tx`, a crm_common UnitOfWork), raising the events it causes.
`related` (dependencies.RelatedRecords) checks that a lead or campaign exists."""
import datetime as dt

from crm_common.ids import parse_id
from crm_common.timefmt import parse_date_or_timestamp, utcnow
from tasks.exceptions import InvalidTask, TaskNotFound
from tasks.models import PRIORITIES, RELATED_TYPES, Task
from tasks.repository import DEFAULT_SORT, SORT_COLUMNS, TaskRepository
from tasks.schemas import task_to_dict

DEFAULTS = {"description": "", "due_date": None, "priority": "medium", "completed": False,
            "related_to_type": "general", "related_to_id": None}
NULLABLE = ("due_date", "related_to_id")
BIGINT_MAX = 2 ** 63 - 1           # PostgreSQL's OFFSET is a bigint
# Field names in errors are the contract's JSON names.
API_NAMES = {"due_date": "dueDate", "related_to_type": "relatedToType",
             "related_to_id": "relatedToId"}


def _title(value):
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise ValueError("must be text of 1-200 characters")
    return value


def _text(value):
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _flag(value):
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _one_of(choices):
    def check(value):
        if value not in choices:
            raise ValueError("must be one of %s" % ", ".join(choices))
        return value
    return check


def _uuid(value):
    key = parse_id(value)
    if key is None:
        raise ValueError("must be a UUID")
    return key


def _count(low, high):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError("must be a whole number from %d to %d" % (low, high))
        return value
    return check


FIELDS = {"title": _title, "description": _text, "due_date": parse_date_or_timestamp,
          "priority": _one_of(PRIORITIES), "completed": _flag,
          "related_to_type": _one_of(RELATED_TYPES), "related_to_id": _uuid}
FILTERS = {"completed": _flag, "overdue": _flag, "priority": _one_of(PRIORITIES),
           "related_to_type": _one_of(RELATED_TYPES), "related_to_id": _uuid,
           "limit": _count(1, 1000), "offset": _count(0, BIGINT_MAX)}


def _parse(data, parsers):
    """`data` (snake_case) checked and converted by `parsers`; every problem
    is named at once."""
    errors = [(name, "unknown field") for name in sorted(set(data) - set(parsers))]
    values = {}
    for name in sorted(set(data) & set(parsers)):
        value = data[name]
        try:
            if value is None and name not in NULLABLE:
                raise ValueError("may not be null")
            values[name] = None if value is None else parsers[name](value)
        except ValueError as exc:
            errors.append((API_NAMES.get(name, name), str(exc)))
    if errors:
        raise InvalidTask({"description": "; ".join("%s: %s" % e for e in errors),
                           "errors": [{"field": f, "message": m} for f, m in errors]})
    return values


def _check_relation(related_to_type, related_to_id):
    if related_to_type == "general" and related_to_id is not None:
        raise InvalidTask.for_field("relatedToId", "must be empty when relatedToType is general")
    if related_to_type != "general" and related_to_id is None:
        raise InvalidTask.for_field("relatedToId", "required when relatedToType is %s"
                                    % related_to_type)


def _set_due(task, due):
    """A date goes to due_date, a timestamp to due_at: the kind is kept."""
    is_timestamp = isinstance(due, dt.datetime)
    task.due_at = due if is_timestamp else None
    task.due_date = None if is_timestamp else due


def _set_completed(task, completed, now):
    task.completed = completed
    task.completed_at = now if completed else None


def create_task(tx, data, related):
    values = {**DEFAULTS, **_parse(data, FIELDS)}
    if "title" not in values:
        raise InvalidTask.for_field("title", "required")
    _check_relation(values["related_to_type"], values["related_to_id"])
    related.ensure_exists(values["related_to_type"], values["related_to_id"])
    now = utcnow()
    task = Task(title=values["title"], description=values["description"],
                priority=values["priority"], related_to_type=values["related_to_type"],
                related_to_id=values["related_to_id"], created_at=now, updated_at=now)
    _set_due(task, values["due_date"])
    _set_completed(task, values["completed"], now)
    TaskRepository(tx.session).add(task)
    result = task_to_dict(task)
    tx.emit("task_created", {"task": result})
    tx.commit()
    return result


def get_task(tx, task_id):
    task = TaskRepository(tx.session).get(task_id)
    if task is None:
        raise TaskNotFound()
    return task_to_dict(task)


def list_tasks(tx, query):
    query = {k: v for k, v in (query or {}).items() if v is not None}
    sort = query.pop("sort", DEFAULT_SORT)
    if sort.lstrip("-") not in SORT_COLUMNS:
        raise InvalidTask.for_field("sort", "unknown sort field")
    rows, total = TaskRepository(tx.session).search(utcnow(), sort=sort, **_parse(query, FILTERS))
    return {"items": [task_to_dict(task) for task in rows], "total": total}


def update_task(tx, task_id, changes, related):
    values = _parse(changes, FIELDS)
    repo = TaskRepository(tx.session)
    task = repo.get(task_id, for_update=True)
    if task is None:
        raise TaskNotFound()
    before = task_to_dict(task)

    related_to_type = values.get("related_to_type", task.related_to_type)
    if related_to_type == "general" and "related_to_id" not in values:
        values["related_to_id"] = None       # moving a task to general lets go of its record
    related_to_id = values.get("related_to_id", task.related_to_id)
    _check_relation(related_to_type, related_to_id)
    # An open task must point at a record that exists: check a new relation,
    # and an old one when a completed task (kept after its lead went) reopens.
    # The row stays locked meanwhile, so a concurrent update cannot slip in.
    moved = (related_to_type, related_to_id) != (task.related_to_type, task.related_to_id)
    reopened = task.completed and values.get("completed") is False
    if moved or reopened:
        related.ensure_exists(related_to_type, related_to_id)

    now = utcnow()
    for field in ("title", "description", "priority", "related_to_type", "related_to_id"):
        if field in values:
            setattr(task, field, values[field])
    if "due_date" in values:
        _set_due(task, values["due_date"])
    if values.get("completed", task.completed) != task.completed:
        _set_completed(task, values["completed"], now)
    task.updated_at = now
    tx.session.flush()
    after = task_to_dict(task)
    if all(before[key] == after[key] for key in after if key != "updatedAt"):
        return before              # nothing changed: no write, no event
    tx.emit("task_updated", {"task": after})
    if task.completed and not before["completed"]:
        tx.emit("task_completed", {"task": after})
    tx.commit()
    return after


def delete_task(tx, task_id):
    repo = TaskRepository(tx.session)
    task = repo.get(task_id, for_update=True)
    if task is None:
        raise TaskNotFound()
    gone = task_to_dict(task)
    repo.delete(task)
    tx.emit("task_deleted", {"task": gone})
    tx.commit()
    return gone


def delete_open_tasks_of_lead(tx, lead_id):
    """A lead was deleted: its open tasks go (nobody should be chased for work
    on a lead that is gone); completed ones stay as history. Idempotent: a
    redelivered event finds no open task left. Returns the deleted tasks."""
    key = parse_id(lead_id)
    if key is None:
        return []                  # not a lead id: nothing can point at it
    repo = TaskRepository(tx.session)
    gone = []
    for task in repo.open_tasks_of("lead", key):
        gone.append(task_to_dict(task))
        repo.delete(task)
        tx.emit("task_deleted", {"task": gone[-1]})
    tx.commit()
    return gone
