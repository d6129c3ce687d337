"""Input the contacts service refuses before it touches the database: a clear
InvalidContact naming the field, and nothing written."""
import pytest
from nameko.testing.services import worker_factory

from crm_common.testing import mock_store
from contacts.exceptions import InvalidContact
from contacts.service import ContactsService

LEAD = {"id": "6f1c7b0e-7c52-4a55-9a0e-1f6a3a7c2b10", "name": "Alice", "email": "a@example.com",
        "phone": None, "company": "Acme", "jobTitle": "CTO"}


@pytest.fixture
def service():
    return worker_factory(ContactsService, db=mock_store())


@pytest.fixture
def tx(service):
    return service.db.transaction.return_value.__enter__.return_value


def refused_fields(call, *args):
    with pytest.raises(InvalidContact) as exc:
        call(*args)
    return [e["field"] for e in exc.value.details["errors"]]


@pytest.mark.parametrize("body, fields", [
    ({"email": "a@example.com"}, ["name"]),
    ({"name": "", "email": ""}, ["name", "email"]),
    ({"name": "Bob"}, ["email"]),
    ({"name": "Bob", "email": "b@example.com", "leadId": "x", "favourite": 1},
     ["favourite", "leadId"]),
    ({"name": "B" * 201, "email": "b@example.com"}, ["name"]),
    ({"name": "Bob", "email": "b@example.com", "phone": 5550100}, ["phone"]),
    ({"name": "Bo\x00b", "email": "b@example.com"}, ["name"]),
], ids=["missing-name", "empty-name-and-email", "missing-email", "unknown-fields", "name-too-long",
        "phone-not-text", "nul-character"])
def test_invalid_create_names_the_fields(service, tx, body, fields):
    assert refused_fields(service.create_contact, body) == fields
    tx.commit.assert_not_called()
    tx.session.add.assert_not_called()


@pytest.mark.parametrize("changes, field", [
    ({"name": None}, "name"), ({"email": ""}, "email"), ({"lastContacted": None}, "lastContacted"),
    ({"notes": ["a"]}, "notes"),
])
def test_invalid_update_names_the_field(service, tx, changes, field):
    assert refused_fields(service.update_contact, LEAD["id"], changes) == [field]
    tx.commit.assert_not_called()


@pytest.mark.parametrize("data, field", [
    ({"type": "status_change", "title": "x"}, "type"),
    ({"type": "telepathy", "title": "x"}, "type"),
    ({"title": "x"}, "type"),
    ({"type": "call", "title": ""}, "title"),
    ({"type": "call", "title": "x" * 201}, "title"),
    ({"type": "call", "title": "x", "timestamp": "soon"}, "timestamp"),
    ({"type": "call", "title": "x", "timestamp": "10000-01-01T00:00:00Z"}, "timestamp"),
    ({"type": "call", "title": "x", "when": "now"}, "when"),
])
def test_invalid_history_names_the_field(service, tx, data, field):
    assert refused_fields(service.log_history, LEAD["id"], data) == [field]
    tx.commit.assert_not_called()
    tx.session.add.assert_not_called()


@pytest.mark.parametrize("query, field", [
    ({"sort": "password"}, "sort"), ({"sort": "-notes"}, "sort"), ({"status": "new"}, "status"),
])
def test_invalid_list_query_names_the_parameter(service, query, field):
    assert refused_fields(service.list_contacts, query) == [field]


@pytest.mark.parametrize("lead, field", [
    ({**LEAD, "id": "not-a-uuid"}, "id"), ({**LEAD, "email": None}, "email"),
    ({**LEAD, "name": ""}, "name"), ("a lead id", "id"),
])
def test_a_lead_that_cannot_become_a_contact_is_refused(service, tx, lead, field):
    assert refused_fields(service.create_from_lead, lead) == [field]
    tx.commit.assert_not_called()
