"""/api/tasks: the Task resource."""
import falcon
from pydantic.alias_generators import to_snake

from gateway.http import ignore_read_only, page, validate_body, validate_query
from gateway.openapi import operation
from gateway.schemas.tasks import Task, TaskCreate, TaskListQuery, TaskUpdate

ignore_read_only(TaskCreate, Task)
ignore_read_only(TaskUpdate, Task)


def to_service_query(query):
    """The list query as the tasks service takes it: snake_case sort, the id as text."""
    descending = query["sort"].startswith("-")
    query["sort"] = ("-" if descending else "") + to_snake(query["sort"].lstrip("-"))
    if query["related_to_id"] is not None:
        query["related_to_id"] = str(query["related_to_id"])
    return query


class Tasks:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("List tasks (default: by due date, tasks without one last)", query=TaskListQuery,
               response=Task, many=True, tags=["tasks"])
    def on_get(self, req, resp):
        query = to_service_query(validate_query(req, TaskListQuery))
        result = self.rpc(req, "tasks", "list_tasks", query)
        page(req, resp, result, query["limit"], query["offset"])

    @operation("Create a task; a lead or campaign it points at must exist", body=TaskCreate,
               response=Task, status=201, tags=["tasks"])
    def on_post(self, req, resp):
        task = self.rpc(req, "tasks", "create_task", validate_body(req, TaskCreate))
        resp.status = falcon.HTTP_201
        resp.location = "/api/tasks/%s" % task["id"]
        resp.media = task


class TaskItem:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Read a task", response=Task, errors=("404",), tags=["tasks"])
    def on_get(self, req, resp, id):
        resp.media = self.rpc(req, "tasks", "get_task", id)

    @operation("Update a task (partial); completed true sets completedAt, false clears it",
               body=TaskUpdate, response=Task, errors=("404",), tags=["tasks"])
    def on_patch(self, req, resp, id):
        resp.media = self.rpc(req, "tasks", "update_task", id, validate_body(req, TaskUpdate))

    @operation("Delete a task", status=204, errors=("404",), tags=["tasks"])
    def on_delete(self, req, resp, id):
        self.rpc(req, "tasks", "delete_task", id)
        resp.status = falcon.HTTP_204
