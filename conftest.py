"""Test settings for the whole repository.

Each test run has its own databases (`crm_test_<run>_*`) and, where
rabbitmqctl can make one, its own RabbitMQ vhost (`crm_test_<run>`), both
removed at the end: a `make run` stack, or another test run on the same
machine, is left alone. CRM_TEST_RUN names the run (default: random).
"""
import eventlet

# nameko's services run on eventlet; its pytest plugin no longer patches.
eventlet.monkey_patch()

import os  # noqa: E402
import secrets  # noqa: E402

import pytest  # noqa: E402

from crm_common.testing import delete_vhost, vhost_uri  # noqa: E402

RUN = os.environ.get("CRM_TEST_RUN") or secrets.token_hex(3)
TEST_PREFIX = "crm_test_" + RUN
TEST_VHOST = "crm_test_" + RUN

AMQP_URI = vhost_uri(TEST_VHOST)
os.environ["AMQP_URI"] = AMQP_URI
os.environ["CRM_DB_PREFIX"] = TEST_PREFIX
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session", autouse=True)
def fresh_test_databases():
    from crm_common.testing import drop_databases

    drop_databases(os.environ["DATABASE_URL"], TEST_PREFIX)
    yield
    drop_databases(os.environ["DATABASE_URL"], TEST_PREFIX)
    delete_vhost(TEST_VHOST)


@pytest.fixture(scope="session")
def amqp_uri():
    return AMQP_URI


@pytest.fixture
def service_config(amqp_uri):
    """A nameko container config for the test broker and databases."""
    return {"AMQP_URI": amqp_uri, "CRM_DB_PREFIX": TEST_PREFIX, "max_workers": 10,
            "DATABASE_URL": os.environ["DATABASE_URL"]}


@pytest.fixture
def event_tap(amqp_uri):
    from crm_common.testing import EventTap

    taps = []

    def make(service, pattern="#"):
        tap = EventTap(amqp_uri, service, pattern)
        taps.append(tap)
        return tap

    yield make
    for tap in taps:
        tap.close()


@pytest.fixture
def log_lines():
    """What the process logs from now on, as the JSON objects of its lines
    (crm_common.logs), each formatted when written: with the fields bound
    for the thread that wrote it."""
    import io
    import json
    import logging

    from crm_common.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(secrets=()))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)
