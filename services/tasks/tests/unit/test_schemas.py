import datetime as dt
import uuid

from tasks.models import Task
from tasks.schemas import task_to_dict

CREATED = dt.datetime(2024, 3, 10, 10, 0, tzinfo=dt.timezone.utc)


def task(**fields):
    base = dict(id=uuid.uuid4(), title="Call Alice", description="", priority="high",
                completed=False, completed_at=None, related_to_type="general",
                related_to_id=None, due_date=None, due_at=None, created_at=CREATED,
                updated_at=CREATED)
    return Task(**{**base, **fields})


def test_a_date_due_is_written_as_a_date():
    assert task_to_dict(task(due_date=dt.date(2024, 3, 12)))["dueDate"] == "2024-03-12"


def test_a_timestamp_due_is_written_as_a_utc_timestamp():
    due = dt.datetime(2024, 3, 12, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert task_to_dict(task(due_at=due))["dueDate"] == "2024-03-12T13:30:00.000Z"


def test_the_contract_shape_in_camel_case():
    lead_id = uuid.uuid4()
    written = task_to_dict(task(related_to_type="lead", related_to_id=lead_id, completed=True,
                                completed_at=CREATED))
    assert set(written) == {"id", "title", "description", "dueDate", "priority", "completed",
                            "completedAt", "relatedToType", "relatedToId", "createdAt",
                            "updatedAt"}
    assert written["relatedToId"] == str(lead_id)
    assert written["completedAt"] == "2024-03-10T10:00:00.000Z"
    assert written["dueDate"] is None
