"""The leads service: RPC entrypoints that translate to handlers."""
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from leads import handlers
from leads.dependencies import LeadsDatabase
from leads.exceptions import DuplicateEmail, InvalidLead, LeadNotFound

EXPECTED = (LeadNotFound, DuplicateEmail, InvalidLead, Unavailable)


class LeadsService:
    name = "leads"

    db = LeadsDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def create_lead(self, data):
        with self.db.transaction() as tx:
            return handlers.create_lead(tx, data)

    @rpc(expected_exceptions=EXPECTED)
    def get_lead(self, lead_id):
        with self.db.transaction() as tx:
            return handlers.get_lead(tx, lead_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_leads(self, query=None):
        with self.db.transaction() as tx:
            return handlers.list_leads(tx, query)

    @rpc(expected_exceptions=EXPECTED)
    def update_lead(self, lead_id, changes):
        with self.db.transaction() as tx:
            return handlers.update_lead(tx, lead_id, changes)

    @rpc(expected_exceptions=EXPECTED)
    def delete_lead(self, lead_id):
        with self.db.transaction() as tx:
            return handlers.delete_lead(tx, lead_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_activity(self, lead_id, limit=100, offset=0):
        with self.db.transaction() as tx:
            return handlers.list_activity(tx, lead_id, limit, offset)

    @rpc(expected_exceptions=EXPECTED)
    def log_activity(self, lead_id, data):
        with self.db.transaction() as tx:
            return handlers.log_activity(tx, lead_id, data)
