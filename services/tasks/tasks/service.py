"""The tasks service: RPC and event entrypoints that translate to handlers."""
import logging

import eventlet
from nameko.events import event_handler
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from crm_common.rpc import RpcClient
from tasks import handlers
from tasks.dependencies import RELATED_CHECK_TIMEOUT, RelatedRecords, TasksDatabase
from tasks.exceptions import InvalidTask, TaskNotFound

log = logging.getLogger(__name__)

EXPECTED = (TaskNotFound, InvalidTask, Unavailable)
# How long a lead_deleted event waits before it is given back to the queue
# when the database is down, so an outage is not a tight redelivery loop.
REDELIVERY_PAUSE = 1.0


class TasksService:
    name = "tasks"

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
        with self.db.transaction() as tx:
            return handlers.create_task(tx, data, self._related())

    @rpc(expected_exceptions=EXPECTED)
    def get_task(self, task_id):
        with self.db.transaction() as tx:
            return handlers.get_task(tx, task_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_tasks(self, query=None):
        with self.db.transaction() as tx:
            return handlers.list_tasks(tx, query)

    @rpc(expected_exceptions=EXPECTED)
    def update_task(self, task_id, changes):
        with self.db.transaction() as tx:
            return handlers.update_task(tx, task_id, changes, self._related())

    @rpc(expected_exceptions=EXPECTED)
    def delete_task(self, task_id):
        with self.db.transaction() as tx:
            return handlers.delete_task(tx, task_id)

    # A failure gives the event back to the queue (requeue_on_error) rather
    # than losing the clean-up; redelivery is harmless, the handler is idempotent.
    @event_handler("leads", "lead_deleted", requeue_on_error=True)
    def on_lead_deleted(self, payload):
        # Read defensively: a malformed event would otherwise be requeued forever.
        lead_id = (payload.get("lead") or {}).get("id")
        try:
            with self.db.transaction() as tx:
                gone = handlers.delete_open_tasks_of_lead(tx, lead_id)
        except Unavailable:
            eventlet.sleep(REDELIVERY_PAUSE)
            raise
        if gone:
            log.info("lead %s deleted: deleted its %d open task(s)", lead_id, len(gone))
