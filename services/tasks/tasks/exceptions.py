"""Errors the tasks service raises over RPC (mapped to HTTP by the gateway)."""
from crm_common.errors import NotFound, ValidationFailed


class TaskNotFound(NotFound):
    default_description = "No task with this id."


class InvalidTask(ValidationFailed):
    pass
