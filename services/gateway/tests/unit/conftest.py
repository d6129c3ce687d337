"""Fakes for the gateway's unit tests: the app is built with `create_app`
around a scripted RPC client and an in-memory key store, so nothing here needs
RabbitMQ, PostgreSQL or a running service."""
import copy
import hmac
import os
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pytest
from falcon import testing

from crm_common.config import Settings
from crm_common.testing import delete_vhost
from gateway.app import create_app
from gateway.keys import KEY_PREFIX, mask, new_key

API_KEY = "crm_" + "0123456789abcdef" * 4
ORIGIN = "http://localhost:5173"
LEAD_ID = "0b6f3f5e-8a59-4c1b-9d0e-2f7d1f7c9a11"
SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")
WRITE_METHODS = frozenset({"create_lead", "update_lead", "delete_lead", "log_activity"})


@pytest.fixture(scope="session", autouse=True)
def fresh_test_databases():
    """The root conftest makes and drops databases for each run;
    unit tests touch no database, so they neither need PostgreSQL nor disturb
    another run's databases. The run's vhost (made when the root conftest is
    imported) is still removed at the end."""
    yield
    vhost = unquote(urlsplit(os.environ.get("AMQP_URI", "")).path[1:])
    if vhost.startswith("crm_test_"):
        delete_vhost(vhost)


@dataclass
class Call:
    service: str
    method: str
    args: tuple
    kwargs: dict
    timeout: float = None
    context: dict = field(default_factory=dict)


class FakeRpc:
    """Stands in for gateway.rpc.RpcClient. Script an answer with
    `answer(service, method, result)` or `fail(service, method, exc)`;
    a call nobody scripted is recorded as unexpected and raises."""

    def __init__(self):
        self.calls = []
        self.dispatched = []
        self.unexpected = []
        self._script = {}
        self._lock = threading.Lock()

    def answer(self, service, method, result):
        self._script[(service, method)] = ("result", result)

    def fail(self, service, method, exc):
        self._script[(service, method)] = ("raise", exc)

    def call(self, service, method, *args, timeout=None, context=None, **kwargs):
        with self._lock:
            self.calls.append(Call(service, method, args, kwargs, timeout, context or {}))
            scripted = self._script.get((service, method))
            if scripted is None:
                self.unexpected.append((service, method, args, kwargs))
        if scripted is None:
            raise AssertionError("unexpected RPC call %s.%s%r" % (service, method, args))
        kind, value = scripted
        if kind == "raise":
            raise value
        return copy.deepcopy(value)

    def called(self, service, method):
        return [c for c in self.calls if (c.service, c.method) == (service, method)]

    def only_call(self, service, method):
        found = self.called(service, method)
        assert len(found) == 1, "expected one %s.%s call, got %r" % (service, method, self.calls)
        return found[0]

    def writes(self):
        return [c for c in self.calls if c.method in WRITE_METHODS]

    def dispatch(self, source, event_type, payload, consumer="the consumer", timeout=None,
                 context=None):
        """Records events the gateway publishes (`dispatched`); `dispatch_error`
        set to an exception makes the broker refuse them."""
        if getattr(self, "dispatch_error", None) is not None:
            raise self.dispatch_error
        with self._lock:
            self.dispatched.append((source, event_type, copy.deepcopy(payload), consumer,
                                    timeout, context or {}))


class FakeKeys:
    """An in-memory key store with KeyStore's interface: one active key."""

    def __init__(self, key=API_KEY):
        self.active = key

    def verify(self, key):
        return bool(key) and hmac.compare_digest(key.encode(), self.active.encode())

    def masked(self):
        prefix = KEY_PREFIX if self.active.startswith(KEY_PREFIX) else ""
        return mask(prefix, self.active[-4:])

    def regenerate(self):
        self.active = new_key()
        return self.active


def lead(**overrides):
    """A lead as the leads service returns it (camelCase, read-only fields too)."""
    base = {"id": LEAD_ID, "name": "Alice Johnson", "email": "alice@example.com",
            "phone": None, "company": "Acme", "jobTitle": "CTO", "status": "new",
            "source": "Facebook Ad", "score": 85, "value": 1200.0, "ownerId": None,
            "createdAt": "2024-03-10T10:00:00Z", "updatedAt": "2024-03-10T10:00:00Z",
            "lastInteraction": "2024-03-10", "lastInteractionAt": "2024-03-10T10:00:00Z"}
    base.update(overrides)
    return base


@pytest.fixture
def make_lead():
    return lead


@pytest.fixture
def api_key():
    return API_KEY


@pytest.fixture
def auth(api_key):
    return {"Authorization": "Bearer %s" % api_key}


@pytest.fixture
def settings():
    return Settings(cors_origins=(ORIGIN,), rpc_timeout=1.0,
                    public_url="https://crm.example.com",
                    meta_verify_token="verify-token-1234567890",
                    meta_app_secret="app-secret-abcdef")


@pytest.fixture
def rpc():
    fake = FakeRpc()
    yield fake
    assert not fake.unexpected, "the gateway made RPC calls no test scripted: %r" % fake.unexpected


@pytest.fixture
def keys():
    return FakeKeys()


@pytest.fixture
def app(settings, rpc, keys):
    return create_app(settings, rpc, keys)


@pytest.fixture
def anon(app):
    """A client that presents no API key."""
    return testing.TestClient(app)


@pytest.fixture
def client(app, auth):
    """A client that presents the right key on every request."""
    return testing.TestClient(app, headers=auth)
