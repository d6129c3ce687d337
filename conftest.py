"""Test settings for the whole repository.

Tests use their own databases (`crm_test_*`, dropped at the start of a run)
and, where rabbitmqctl can make one, their own RabbitMQ vhost (`crm_test`), so
a `make run` stack on the same machine is left alone.
"""
import eventlet

# nameko's services run on eventlet; its pytest plugin no longer patches.
eventlet.monkey_patch()

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

TEST_PREFIX = "crm_test"
TEST_VHOST = "crm_test"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def _test_vhost_uri():
    base = os.environ.get("CRM_TEST_AMQP_URI")
    if base:
        return base
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "add_vhost", TEST_VHOST], capture_output=True)
        done = subprocess.run([ctl, "set_permissions", "-p", TEST_VHOST, "guest", ".*", ".*", ".*"],
                              capture_output=True)
        if done.returncode == 0:
            return DEFAULT_AMQP + TEST_VHOST
    return os.environ.get("AMQP_URI", DEFAULT_AMQP + "/")


AMQP_URI = _test_vhost_uri()
os.environ["AMQP_URI"] = AMQP_URI
os.environ["CRM_DB_PREFIX"] = TEST_PREFIX
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session", autouse=True)
def fresh_test_databases():
    from crm_common.testing import drop_databases

    drop_databases(os.environ["DATABASE_URL"], TEST_PREFIX)
    yield


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
