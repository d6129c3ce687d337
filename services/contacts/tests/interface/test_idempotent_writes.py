"""The contacts service's writes are applied once per idempotency key: a
call repeated with the key in its context (a redelivered RPC message, a
client's retry) gets the first answer and changes nothing, against real
PostgreSQL."""
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from nameko.standalone.rpc import ServiceRpcProxy

from contacts.exceptions import ContactNotFound
from contacts.service import ContactsService
from crm_common import idempotency
from crm_common.errors import ValidationFailed
from crm_common.testing import (database_engine, entrypoint_caller, lock_waiters, wait_for,
                                writes_held)


@pytest.fixture
def container(container_factory, service_config):
    container = container_factory(ContactsService, service_config)
    container.start()
    return container


@pytest.fixture
def call(container):
    return entrypoint_caller(container)


@pytest.fixture
def keyed(container):
    """`keyed(key)("method", *args)`: a call whose context carries `key`."""
    return lambda key: entrypoint_caller(container, {idempotency.CONTEXT_KEY: key})


@pytest.fixture
def engine(container):
    return database_engine(container)


@pytest.fixture
def count_rows(engine):
    def count(sql, **params):
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    return count


def new_key():
    return "key-" + uuid.uuid4().hex


def email():
    return "idem.%s@example.com" % uuid.uuid4().hex[:10]


def test_a_create_repeated_with_its_key_is_applied_once_and_answered_the_same(call, keyed):
    retry = keyed(new_key())
    data = {"name": "Once", "email": email()}
    first = retry("create_contact", data)
    assert retry("create_contact", data) == first
    assert call("list_contacts", {"search": data["email"]})["total"] == 1


def test_without_a_key_a_repeat_is_a_new_contact(call):
    data = {"name": "Twice", "email": email()}
    call("create_contact", data)
    call("create_contact", data)
    assert call("list_contacts", {"search": data["email"]})["total"] == 2


def test_a_key_reused_with_another_request_is_refused_naming_the_header(keyed):
    retry = keyed(new_key())
    retry("create_contact", {"name": "First", "email": email()})
    with pytest.raises(ValidationFailed) as exc:
        retry("create_contact", {"name": "Second", "email": email()})
    assert exc.value.details["errors"][0]["field"] == "Idempotency-Key"


def test_a_key_is_scoped_to_its_operation(call, keyed):
    retry = keyed(new_key())
    contact = retry("create_contact", {"name": "Scoped", "email": email()})
    retry("log_history", contact["id"], {"type": "call", "title": "Intro"})
    assert retry("update_contact", contact["id"], {"role": "CTO"})["role"] == "CTO"
    assert call("list_history", contact["id"])["total"] == 1


def test_racing_duplicates_with_one_key_apply_once(container, call, service_config, engine):
    key, data = new_key(), {"name": "Racer", "email": email()}

    def create():
        # real RPC messages, served concurrently: a redelivery racing its original
        with ServiceRpcProxy("contacts", service_config, timeout=10,
                             context_data={idempotency.CONTEXT_KEY: key}) as contacts:
            return contacts.create_contact(data)

    with writes_held(engine, "contacts"):
        racers = [eventlet.spawn(create) for _ in range(6)]
        wait_for(lambda: lock_waiters(engine) == 6, what="six runs waiting")
    results = [g.wait() for g in racers]
    assert all(r == results[0] for r in results)
    assert call("list_contacts", {"search": data["email"]})["total"] == 1


def test_a_repeated_update_does_not_undo_a_later_change(call, keyed):
    contact = call("create_contact", {"name": "Moving", "email": email()})
    retry = keyed(new_key())
    first = retry("update_contact", contact["id"], {"company": "Acme"})
    call("update_contact", contact["id"], {"company": "Globex"})
    assert retry("update_contact", contact["id"], {"company": "Acme"}) == first
    assert call("get_contact", contact["id"])["company"] == "Globex"


def test_a_repeated_delete_answers_as_the_first_did(call, keyed):
    contact = call("create_contact", {"name": "Gone", "email": email()})
    retry = keyed(new_key())
    assert retry("delete_contact", contact["id"]) == retry("delete_contact", contact["id"])
    with pytest.raises(ContactNotFound):
        call("delete_contact", contact["id"])


def test_a_repeated_history_item_is_logged_once(call, keyed, count_rows):
    contact = call("create_contact", {"name": "Busy", "email": email()})
    retry = keyed(new_key())
    item = {"type": "meeting", "title": "Demo", "timestamp": "2024-03-10T10:00:00Z"}
    assert retry("log_history", contact["id"], item) == retry("log_history", contact["id"], item)
    assert count_rows("SELECT count(*) FROM contact_history WHERE contact_id = :c",
                      c=contact["id"]) == 1


def test_a_repeated_conversion_answers_as_the_first_did(call, keyed):
    lead = {"id": str(uuid.uuid4()), "name": "Lead", "email": email(), "jobTitle": "CEO"}
    retry = keyed(new_key())
    first = retry("create_from_lead", lead)
    assert first["created"] is True
    # The lead changed between the tries: still the same conversion.
    assert retry("create_from_lead", dict(lead, name="Lead, renamed")) == first
    # Without the key, a second conversion finds the contact already made.
    assert call("create_from_lead", lead)["created"] is False
