"""The tasks service: RPC and event entrypoints that translate to handlers."""
import logging

from crm_common.entrypoints import rpc
from crm_common.errors import Unavailable, ValidationFailed
from crm_common.reliable_events import reliable_event_handler
from crm_common.rpc import RpcClient
from crm_common.telemetry import Telemetry
from tasks import handlers
from tasks.dependencies import RELATED_CHECK_TIMEOUT, RelatedRecords, TasksDatabase
from tasks.exceptions import InvalidTask, TaskNotFound

log = logging.getLogger(__name__)

# ValidationFailed: an idempotency key reused for another request.
EXPECTED = (TaskNotFound, InvalidTask, Unavailable, ValidationFailed)
# A failed lead_deleted event is retried after 1, 2, 4, ... s (at most 60 s),
# 8 attempts in all (about 2 minutes of outage), then parked for an operator
# (`python -m crm_common.parked list|replay`): never lost, never a hot loop.
LEAD_DELETED_ATTEMPTS = 8
LEAD_DELETED_RETRY_DELAY = 1.0


class TasksService:
    name = "tasks"
    telemetry = Telemetry()

    db = TasksDatabase()
    leads = RpcClient("leads", timeout=RELATED_CHECK_TIMEOUT)
    campaigns = RpcClient("campaigns", timeout=RELATED_CHECK_TIMEOUT)

    def _related(self):
        return RelatedRecords(leads=self.leads, campaigns=self.campaigns)

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def create_task(self, data):
        return self.db.idempotent("create_task", [data],
                                  lambda tx: handlers.create_task(tx, data, self._related()))

    @rpc(expected_exceptions=EXPECTED)
    def get_task(self, task_id):
        with self.db.read() as tx:
            return handlers.get_task(tx, task_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_tasks(self, query=None):
        with self.db.read() as tx:
            return handlers.list_tasks(tx, query)

    @rpc(expected_exceptions=EXPECTED)
    def update_task(self, task_id, changes):
        return self.db.idempotent(
            "update_task", [task_id, changes],
            lambda tx: handlers.update_task(tx, task_id, changes, self._related()))

    @rpc(expected_exceptions=EXPECTED)
    def delete_task(self, task_id):
        return self.db.idempotent("delete_task", [task_id],
                                  lambda tx: handlers.delete_task(tx, task_id))

    # A failure retries the event later (then parks it) rather than losing the
    # clean-up; redelivery is harmless, the handler is idempotent.
    @reliable_event_handler("leads", "lead_deleted", max_attempts=LEAD_DELETED_ATTEMPTS,
                            retry_delay=LEAD_DELETED_RETRY_DELAY, max_delay=60.0)
    def on_lead_deleted(self, payload):
        # Read defensively: a malformed event changes nothing rather than failing.
        lead_id = (payload.get("lead") or {}).get("id")
        with self.db.transaction() as tx:
            gone = handlers.delete_open_tasks_of_lead(tx, lead_id)
        if gone:
            log.info("lead %s deleted: deleted its %d open task(s)", lead_id, len(gone))
