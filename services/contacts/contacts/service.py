"""The contacts service: RPC entrypoints that translate to handlers."""
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from contacts import handlers
from contacts.dependencies import ContactsDatabase
from contacts.exceptions import ContactNotFound, InvalidContact

EXPECTED = (ContactNotFound, InvalidContact, Unavailable)


class ContactsService:
    name = "contacts"

    db = ContactsDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def create_contact(self, data):
        with self.db.transaction() as tx:
            return handlers.create_contact(tx, data)

    @rpc(expected_exceptions=EXPECTED)
    def get_contact(self, contact_id):
        with self.db.transaction() as tx:
            return handlers.get_contact(tx, contact_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_contacts(self, query=None):
        with self.db.transaction() as tx:
            return handlers.list_contacts(tx, query)

    @rpc(expected_exceptions=EXPECTED)
    def update_contact(self, contact_id, changes):
        with self.db.transaction() as tx:
            return handlers.update_contact(tx, contact_id, changes)

    @rpc(expected_exceptions=EXPECTED)
    def delete_contact(self, contact_id):
        with self.db.transaction() as tx:
            return handlers.delete_contact(tx, contact_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_history(self, contact_id, limit=100, offset=0):
        with self.db.transaction() as tx:
            return handlers.list_history(tx, contact_id, limit, offset)

    @rpc(expected_exceptions=EXPECTED)
    def log_history(self, contact_id, data):
        with self.db.transaction() as tx:
            return handlers.log_history(tx, contact_id, data)

    @rpc(expected_exceptions=EXPECTED)
    def create_from_lead(self, lead):
        """The contact for a converting lead, made once: {"contact", "created"}."""
        with self.db.transaction() as tx:
            return handlers.create_from_lead(tx, lead)
