"""The leads service's writes are applied once per idempotency key: a call
repeated with the key in its context (what a redelivered RPC message or a
client's retry is) gets the first answer and changes nothing, against real
PostgreSQL."""
import datetime as dt
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from nameko.standalone.rpc import ServiceRpcProxy

from crm_common import idempotency
from crm_common.errors import ValidationFailed
from crm_common.testing import (database_engine, entrypoint_caller, lock_waiters, wait_for,
                                writes_held)
from leads.exceptions import DuplicateEmail, InvalidLead
from leads.service import LeadsService


@pytest.fixture
def container(container_factory, service_config):
    container = container_factory(LeadsService, service_config)
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


def recorded(engine, key):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT operation FROM idempotency_keys WHERE key = :k "
                                    "ORDER BY operation"), {"k": key}).scalars().all()


def new_key():
    return "key-" + uuid.uuid4().hex


def email():
    return "idem.%s@example.com" % uuid.uuid4().hex[:10]


def test_a_create_repeated_with_its_key_is_applied_once_and_answered_the_same(
        call, keyed, event_tap):
    events = event_tap("leads", "lead_created")
    retry = keyed(new_key())
    data = {"name": "Once", "email": email()}
    first = retry("create_lead", data)
    again = retry("create_lead", data)
    assert again == first
    assert call("list_leads", {"search": data["email"]})["total"] == 1
    events.wait(lambda k, b: b["lead"]["id"] == first["id"])
    events.drain(0.5)
    assert [b["lead"]["id"] for _, b, _ in events.events].count(first["id"]) == 1


def test_without_a_key_a_repeat_is_a_new_request(call):
    data = {"name": "Twice", "email": email()}
    call("create_lead", data)
    with pytest.raises(DuplicateEmail):
        call("create_lead", data)


def test_a_key_reused_with_another_request_is_refused_naming_the_header(keyed):
    retry = keyed(new_key())
    retry("create_lead", {"name": "First", "email": email()})
    with pytest.raises(ValidationFailed) as exc:
        retry("create_lead", {"name": "Second", "email": email()})
    assert exc.value.details["errors"] == [{"field": "Idempotency-Key",
                                            "message": "reused with a different request"}]


def test_a_key_is_scoped_to_its_operation(call, keyed, engine):
    key = new_key()
    retry = keyed(key)
    lead = retry("create_lead", {"name": "Scoped", "email": email(), "score": 50})
    retry("log_activity", lead["id"], {"type": "call", "title": "Intro"})
    changed = retry("update_lead", lead["id"], {"status": "contacted"})
    assert changed["status"] == "contacted"
    assert call("get_lead", lead["id"])["score"] == 60
    assert recorded(engine, key) == ["create_lead", "log_activity", "update_lead"]


def test_racing_duplicates_with_one_key_apply_once(container, call, service_config, engine):
    key, data = new_key(), {"name": "Racer", "email": email()}

    def create():
        # real RPC messages, served concurrently: a redelivery racing its original
        with ServiceRpcProxy("leads", service_config, timeout=10,
                             context_data={idempotency.CONTEXT_KEY: key}) as leads:
            return leads.create_lead(data)

    with writes_held(engine, "leads"):
        racers = [eventlet.spawn(create) for _ in range(6)]
        wait_for(lambda: lock_waiters(engine) == 6, what="six runs waiting")
    results = [g.wait() for g in racers]
    assert all(r == results[0] for r in results)
    assert call("list_leads", {"search": data["email"]})["total"] == 1


def test_a_repeated_update_does_not_undo_a_later_change(call, keyed):
    lead = call("create_lead", {"name": "Moving", "email": email()})
    retry = keyed(new_key())
    first = retry("update_lead", lead["id"], {"status": "contacted"})
    call("update_lead", lead["id"], {"status": "qualified"})
    assert retry("update_lead", lead["id"], {"status": "contacted"}) == first
    assert call("get_lead", lead["id"])["status"] == "qualified"
    changes = [a for a in call("list_activity", lead["id"])["items"] if a["type"] == "status_change"]
    assert len(changes) == 2


def test_a_repeated_delete_answers_as_the_first_did(call, keyed):
    lead = call("create_lead", {"name": "Gone", "email": email()})
    retry = keyed(new_key())
    assert retry("delete_lead", lead["id"]) == retry("delete_lead", lead["id"])


def test_a_repeated_activity_is_logged_once(call, keyed):
    lead = call("create_lead", {"name": "Busy", "email": email(), "score": 50})
    retry = keyed(new_key())
    activity = {"type": "meeting", "title": "Demo", "timestamp": "2024-03-10T10:00:00Z"}
    assert retry("log_activity", lead["id"], activity) == retry("log_activity", lead["id"],
                                                                activity)
    assert call("list_activity", lead["id"])["total"] == 1
    assert call("get_lead", lead["id"])["score"] == 65


def test_a_refused_request_records_nothing(keyed, engine):
    key = new_key()
    retry = keyed(key)
    with pytest.raises(InvalidLead):
        retry("create_lead", {"name": "Bad", "email": email(), "status": "won"})
    assert recorded(engine, key) == []
    assert retry("create_lead", {"name": "Good", "email": email()})["name"] == "Good"


def test_an_update_that_changes_nothing_records_nothing(call, keyed, engine):
    lead = call("create_lead", {"name": "Still", "email": email()})
    key = new_key()
    assert keyed(key)("update_lead", lead["id"], {"name": "Still"}) == lead
    assert recorded(engine, key) == []


def test_a_malformed_key_is_refused(keyed):
    with pytest.raises(ValidationFailed):
        keyed("has spaces")("create_lead", {"name": "A", "email": email()})


def test_keys_older_than_the_retention_are_pruned(engine):
    old, fresh = new_key(), new_key()
    with engine.begin() as conn:
        for key, age in ((old, dt.timedelta(hours=25)), (fresh, dt.timedelta(hours=23))):
            conn.execute(sa.insert(idempotency.IDEMPOTENCY_KEYS).values(
                key=key, operation="create_lead", fingerprint="f", result={},
                created_at=sa.func.now() - age))
    assert idempotency.prune(engine) >= 1
    assert recorded(engine, old) == [] and recorded(engine, fresh) == ["create_lead"]


# ---- conversion: leads and contacts, one key -----------------------------------------------

@pytest.fixture
def contacts(container_factory, service_config):
    from contacts.service import ContactsService

    container = container_factory(ContactsService, service_config)
    container.start()
    return container


def notes(call, lead_id):
    return [a for a in call("list_activity", lead_id)["items"] if a["type"] == "note_created"]


def test_a_repeated_conversion_answers_created_both_times(call, keyed, contacts):
    lead = call("create_lead", {"name": "Convert", "email": email()})
    retry = keyed(new_key())
    first = retry("convert_lead", lead["id"])
    assert first["created"] is True
    assert retry("convert_lead", lead["id"]) == first
    assert len(notes(call, lead["id"])) == 1


def test_a_conversion_retried_after_contacts_made_the_contact_still_says_created(
        call, keyed, contacts):
    # The first attempt died after contacts committed, before leads did: the
    # contact exists, the note does not. The retry finds contacts' answer.
    lead = call("create_lead", {"name": "Half", "email": email()})
    key = new_key()
    made = entrypoint_caller(contacts, {idempotency.CONTEXT_KEY: key})("create_from_lead", lead)
    assert made["created"] is True
    again = keyed(key)("convert_lead", lead["id"])
    assert again == made
    assert len(notes(call, lead["id"])) == 1
