"""The leads service: RPC entrypoints that translate to handlers."""
from nameko.exceptions import RemoteError
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from crm_common.rpc import RpcClient
from leads import handlers
from leads.dependencies import LeadsDatabase, remote_timeout
from leads.exceptions import DuplicateEmail, InvalidLead, LeadNotFound

EXPECTED = (LeadNotFound, DuplicateEmail, InvalidLead, Unavailable)


class LeadsService:
    name = "leads"

    db = LeadsDatabase()
    contacts = RpcClient("contacts", timeout=remote_timeout())

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
    def export_leads(self, after_id=None, limit=1000):
        """Every lead, a page at a time in id order (keyset), for rebuilds:
        {"items": [lead...], "next": <id to pass as after_id, or None>}."""
        with self.db.transaction() as tx:
            return handlers.export_leads(tx, after_id, limit)

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

    @rpc(expected_exceptions=EXPECTED)
    def convert_lead(self, lead_id):
        """Make a contact of the lead (or find the one already made), and note
        it on the lead's timeline. Returns {"contact", "created"}.

        The contact is created first, by the contacts service, which keeps one
        contact per lead; the note follows and is recorded once. If this
        process dies in between, converting again finds the contact and
        records the note then.
        """
        with self.db.transaction() as tx:
            lead = handlers.get_lead(tx, lead_id)
        try:
            result = self.contacts.create_from_lead(lead)
        except RemoteError as exc:
            raise InvalidLead("The lead cannot become a contact: %s" % exc.value)
        with self.db.transaction() as tx:
            handlers.record_conversion(tx, lead["id"], result["contact"])
        return result
