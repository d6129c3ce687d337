"""The tasks service. A skeleton so far: it owns its database and answers
the health ping; its features come with their own issue."""
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from tasks.dependencies import TasksDatabase


class TasksService:
    name = "tasks"

    db = TasksDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}
