"""The contacts service: RPC entrypoints that translate to handlers."""

from crm_common.entrypoints import rpc
from crm_common.errors import Unavailable, ValidationFailed
from crm_common.telemetry import Telemetry
from contacts import handlers
from contacts.dependencies import ContactsDatabase
from contacts.exceptions import ContactNotFound, InvalidContact

# ValidationFailed: an idempotency key reused for another request.
EXPECTED = (ContactNotFound, InvalidContact, Unavailable, ValidationFailed)


class ContactsService:
    name = "contacts"
    telemetry = Telemetry()

    db = ContactsDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def create_contact(self, data):
        return self.db.idempotent("create_contact", [data],
                                  lambda tx: handlers.create_contact(tx, data))

    @rpc(expected_exceptions=EXPECTED)
    def get_contact(self, contact_id):
        with self.db.read() as tx:
            return handlers.get_contact(tx, contact_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_contacts(self, query=None):
        with self.db.read() as tx:
            return handlers.list_contacts(tx, query)

    @rpc(expected_exceptions=EXPECTED)
    def update_contact(self, contact_id, changes):
        return self.db.idempotent("update_contact", [contact_id, changes],
                                  lambda tx: handlers.update_contact(tx, contact_id, changes))

    @rpc(expected_exceptions=EXPECTED)
    def delete_contact(self, contact_id):
        return self.db.idempotent("delete_contact", [contact_id],
                                  lambda tx: handlers.delete_contact(tx, contact_id))

    @rpc(expected_exceptions=EXPECTED)
    def list_history(self, contact_id, limit=100, offset=0):
        with self.db.read() as tx:
            return handlers.list_history(tx, contact_id, limit, offset)

    @rpc(expected_exceptions=EXPECTED)
    def log_history(self, contact_id, data):
        return self.db.idempotent("log_history", [contact_id, data],
                                  lambda tx: handlers.log_history(tx, contact_id, data))

    @rpc(expected_exceptions=EXPECTED)
    def create_from_lead(self, lead):
        """The contact for a converting lead, made once: {"contact", "created"}.

        Called by leads' convert_lead, whose idempotency key comes along: a
        repeated conversion gets the first answer ("created" included). Keyed
        by the lead's id only: the lead may have changed between the tries.
        """
        lead_id = lead.get("id") if isinstance(lead, dict) else None
        return self.db.idempotent("create_from_lead", [lead_id],
                                  lambda tx: handlers.create_from_lead(tx, lead))
