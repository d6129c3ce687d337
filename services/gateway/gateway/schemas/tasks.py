"""The Task resource (contract section 3)."""
import datetime as dt
from typing import Annotated, Literal, Optional
from uuid import UUID

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from crm_common.timefmt import parse_date_or_timestamp
from gateway.schemas.base import ApiModel, ListQuery, ReadOnly, Text, create_body, update_body

Priority = Literal["low", "medium", "high"]
RelatedToType = Literal["lead", "campaign", "general"]
SORT_FIELDS = ("dueDate", "title", "priority", "createdAt", "updatedAt", "completedAt")
TaskSort = Literal[tuple(f for name in SORT_FIELDS for f in (name, "-" + name))]


def _due(text):
    parse_date_or_timestamp(text)     # a ValueError names what is wrong
    return text


# Passed on as sent: the tasks service keeps its kind (a date stays a date).
DueDate = Annotated[str, Field(strict=True), AfterValidator(_due), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]})]


def _true_or_false(value):
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


QueryFlag = Annotated[bool, BeforeValidator(_true_or_false)]


class Task(ApiModel):
    id: UUID = ReadOnly()
    title: Text(1, 200)
    description: Text(0, 5000) = ""
    due_date: Optional[DueDate] = Field(
        None, description="a date (YYYY-MM-DD, due by the end of that UTC day) or a timestamp; "
                          "returned in the kind it was sent")
    priority: Priority = "medium"
    completed: bool = Field(False, strict=True,
                            description="true sets completedAt to now; false clears it")
    completed_at: Optional[dt.datetime] = ReadOnly()
    related_to_type: RelatedToType = "general"
    related_to_id: Optional[UUID] = Field(
        None, description="the lead or campaign (must exist); must be empty for `general`")
    created_at: dt.datetime = ReadOnly()
    updated_at: dt.datetime = ReadOnly()


TaskCreate = create_body(Task, "TaskCreate", required=("title",),
                         defaults={"description": "", "priority": "medium", "completed": False,
                                   "related_to_type": "general"})
TaskUpdate = update_body(Task, "TaskUpdate")


class TaskListQuery(ListQuery):
    completed: Optional[QueryFlag] = Field(None, description="true or false")
    overdue: Optional[QueryFlag] = Field(
        None, description="true: not completed and due before today (a date) or before now "
                          "(a timestamp), UTC; false: every other task")
    priority: Optional[Priority] = None
    related_to_type: Optional[RelatedToType] = None
    related_to_id: Optional[UUID] = None
    sort: TaskSort = Field("dueDate", description="field name, `-` for descending; by dueDate, "
                                                  "tasks without one come last")
