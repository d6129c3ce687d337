"""A service calling another one (crm_common.rpc.RpcClient) never waits
forever: no answer in time, or no such service, is `Unavailable`. The callee
answers through the services' own entrypoint (crm_common.entrypoints.rpc)."""
import time

import eventlet
import pytest
from nameko.exceptions import RemoteError
from nameko.testing.services import entrypoint_hook

from crm_common.entrypoints import rpc
from crm_common.errors import Unavailable
from crm_common.rpc import RpcClient


class Callee:
    name = "rpc_callee"

    @rpc
    def echo(self, value):
        return value

    @rpc
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return "late"

    @rpc
    def refuse(self):
        raise KeyError("nope")

    @rpc
    def unserializable(self):
        return {"value": object()}


class Caller:
    name = "rpc_caller"
    callee = RpcClient("rpc_callee", timeout=0.5)
    nobody = RpcClient("rpc_nobody", timeout=0.5)

    @rpc
    def relay(self, method, *args):
        return getattr(self.callee, method)(*args)

    @rpc
    def ask_nobody(self):
        return self.nobody.ping()


@pytest.fixture
def caller(container_factory, service_config):
    container = container_factory(Caller, service_config)
    container.start()
    return container


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def test_answers_and_remote_errors_pass_through(caller, container_factory, service_config):
    container_factory(Callee, service_config).start()
    assert call(caller, "relay", "echo", {"x": 1}) == {"x": 1}
    with pytest.raises(RemoteError) as exc:
        call(caller, "relay", "refuse")
    assert exc.value.exc_type == "KeyError"


def test_a_result_that_cannot_be_sent_is_an_error_not_a_hang(caller, container_factory,
                                                            service_config):
    container_factory(Callee, service_config).start()
    with pytest.raises(RemoteError) as exc:
        call(caller, "relay", "unserializable")
    assert exc.value.exc_type == "UnserializableValueError"
    assert call(caller, "relay", "echo", "still answering") == "still answering"


def test_a_slow_service_is_unavailable_after_the_timeout(caller, container_factory, service_config):
    container_factory(Callee, service_config).start()
    started = time.monotonic()
    with pytest.raises(Unavailable):
        call(caller, "relay", "slow", 2.0)
    assert time.monotonic() - started < 0.5 + 0.5


def test_a_stopped_service_is_unavailable_not_a_hang(caller, container_factory, service_config):
    callee = container_factory(Callee, service_config)
    callee.start()
    assert call(caller, "relay", "echo", 1) == 1
    callee.stop()                          # its queue stays; nobody consumes it
    started = time.monotonic()
    with pytest.raises(Unavailable):
        call(caller, "relay", "echo", 2)
    assert time.monotonic() - started < 0.5 + 0.5


def test_a_service_that_never_ran_is_unavailable(caller):
    with pytest.raises(Unavailable):
        call(caller, "ask_nobody")
