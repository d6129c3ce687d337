"""The tasks service's writes are applied once per idempotency key: a call
repeated with the key in its context (a redelivered RPC message, a client's
retry) gets the first answer and changes nothing, against real PostgreSQL."""
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from nameko.standalone.rpc import ServiceRpcProxy

from crm_common import idempotency
from crm_common.errors import ValidationFailed
from crm_common.testing import (database_engine, entrypoint_caller, lock_waiters, wait_for,
                                writes_held)
from leads.service import LeadsService
from tasks.exceptions import TaskNotFound
from tasks.service import TasksService


@pytest.fixture
def container(container_factory, service_config):
    container = container_factory(TasksService, service_config)
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
def titled(engine):
    """How many tasks have `title`."""
    def count(title):
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM tasks WHERE title = :t"),
                                {"t": title}).scalar()
    return count


def new_key():
    return "key-" + uuid.uuid4().hex


def title():
    return "Task %s" % uuid.uuid4().hex[:10]


def test_a_create_repeated_with_its_key_is_applied_once_and_answered_the_same(keyed, titled):
    retry = keyed(new_key())
    data = {"title": title(), "due_date": "2030-01-02"}
    first = retry("create_task", data)
    assert retry("create_task", data) == first
    assert titled(data["title"]) == 1


def test_without_a_key_a_repeat_is_a_new_task(call, titled):
    data = {"title": title()}
    call("create_task", data)
    call("create_task", data)
    assert titled(data["title"]) == 2


def test_a_key_reused_with_another_request_is_refused_naming_the_header(keyed):
    retry = keyed(new_key())
    retry("create_task", {"title": title()})
    with pytest.raises(ValidationFailed) as exc:
        retry("create_task", {"title": title()})
    assert exc.value.details["errors"][0]["field"] == "Idempotency-Key"


def test_a_key_is_scoped_to_its_operation(call, keyed):
    retry = keyed(new_key())
    task = retry("create_task", {"title": title()})
    assert retry("update_task", task["id"], {"priority": "high"})["priority"] == "high"
    retry("delete_task", task["id"])
    with pytest.raises(TaskNotFound):
        call("get_task", task["id"])


def test_racing_duplicates_with_one_key_apply_once(container, service_config, titled, engine):
    key, data = new_key(), {"title": title()}

    def create():
        # real RPC messages, served concurrently: a redelivery racing its original
        with ServiceRpcProxy("tasks", service_config, timeout=10,
                             context_data={idempotency.CONTEXT_KEY: key}) as tasks:
            return tasks.create_task(data)

    with writes_held(engine, "tasks"):
        racers = [eventlet.spawn(create) for _ in range(6)]
        wait_for(lambda: lock_waiters(engine) == 6, what="six runs waiting")
    results = [g.wait() for g in racers]
    assert all(r == results[0] for r in results)
    assert titled(data["title"]) == 1


def test_a_repeated_update_does_not_undo_a_later_change(call, keyed):
    task = call("create_task", {"title": title()})
    retry = keyed(new_key())
    first = retry("update_task", task["id"], {"completed": True})
    call("update_task", task["id"], {"completed": False})
    assert retry("update_task", task["id"], {"completed": True}) == first
    assert call("get_task", task["id"])["completed"] is False


def test_a_repeated_delete_answers_as_the_first_did(call, keyed):
    task = call("create_task", {"title": title()})
    retry = keyed(new_key())
    assert retry("delete_task", task["id"]) == retry("delete_task", task["id"])


@pytest.fixture
def leads(container_factory, service_config):
    container = container_factory(LeadsService, service_config)
    container.start()
    return entrypoint_caller(container)


def test_a_keyed_task_on_a_lead_checks_the_lead_as_usual(keyed, leads, titled):
    # The key goes on to leads with the check (nameko passes the context on);
    # a read there ignores it.
    lead = leads("create_lead", {"name": "L", "email": "t.%s@example.com" % uuid.uuid4().hex[:8]})
    retry = keyed(new_key())
    data = {"title": title(), "related_to_type": "lead", "related_to_id": lead["id"]}
    assert retry("create_task", data) == retry("create_task", data)
    assert titled(data["title"]) == 1
