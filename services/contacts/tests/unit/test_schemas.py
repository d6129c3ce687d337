"""The contact and history JSON: the contract's camelCase shape."""
import datetime as dt
import uuid

from contacts.models import Contact, HistoryItem
from contacts.schemas import contact_to_dict, history_to_dict

CREATED = dt.datetime(2024, 3, 10, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)


def test_contact_is_written_in_camel_case_with_every_field():
    lead_id = uuid.uuid4()
    contact = Contact(id=uuid.uuid4(), name="Bob", email="bob@example.com", role="Buyer",
                      company="Acme", phone=None, notes="Met at expo", lead_id=lead_id,
                      last_contacted=None, created_at=CREATED, updated_at=CREATED)
    assert contact_to_dict(contact) == {
        "id": str(contact.id), "name": "Bob", "email": "bob@example.com", "role": "Buyer",
        "company": "Acme", "phone": None, "notes": "Met at expo", "leadId": str(lead_id),
        "lastContacted": None, "createdAt": "2024-03-10T10:00:00.123Z",
        "updatedAt": "2024-03-10T10:00:00.123Z"}


def test_unlinked_contact_has_null_lead_id():
    contact = Contact(id=uuid.uuid4(), name="Bob", email="b@example.com", lead_id=None,
                      last_contacted=CREATED, created_at=CREATED, updated_at=CREATED)
    written = contact_to_dict(contact)
    assert written["leadId"] is None
    assert written["lastContacted"] == "2024-03-10T10:00:00.123Z"


def test_history_item_has_the_lead_activity_shape():
    item = HistoryItem(id=uuid.uuid4(), contact_id=uuid.uuid4(), type="call", title="Intro",
                       description=None, timestamp=CREATED, created_at=CREATED)
    assert history_to_dict(item) == {"id": str(item.id), "type": "call", "title": "Intro",
                                     "description": None, "timestamp": "2024-03-10T10:00:00.123Z"}
