"""The gateway's RPC client against real nameko services on a real broker."""
import subprocess
import time
from urllib.parse import urlsplit

import eventlet
import pytest
from nameko.rpc import rpc

from crm_common.testing import TcpProxy, delete_vhost, vhost_uri, wait_for
from gateway.rpc import RemoteError, RpcClient, ServiceUnavailable

HITS = []


class Probe:
    name = "rpc_probe"

    @rpc
    def echo(self, value):
        return value

    @rpc
    def slow(self, seconds, value):
        eventlet.sleep(seconds)
        return value

    @rpc
    def hit(self, tag):
        HITS.append(tag)
        return tag

    @rpc
    def fail(self):
        raise ValueError("no good")


@pytest.fixture
def probe(container_factory, service_config):
    container = container_factory(Probe, service_config)
    container.start()
    return container


@pytest.fixture
def client(amqp_uri):
    client = RpcClient(amqp_uri, timeout=2.0)
    yield client
    client.close()


def test_calls_return_results_and_remote_errors(probe, client):
    assert client.call("rpc_probe", "echo", {"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(RemoteError) as exc:
        client.call("rpc_probe", "fail")
    assert exc.value.exc_type == "ValueError"


def test_many_concurrent_calls_share_one_reply_queue(probe, client):
    queue = client.reply_queue.name
    results = [g.wait() for g in [eventlet.spawn(client.call, "rpc_probe", "echo", n)
                                  for n in range(100)]]
    assert results == list(range(100))
    assert client.reply_queue.name == queue


def test_an_unknown_service_fails_at_once(client):
    # The broker routes nothing for a service that never ran: no waiting.
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        client.call("no_such_service", "ping", timeout=3.0)
    assert time.monotonic() - started < 1.5


def test_a_silent_service_fails_within_the_timeout_and_its_late_reply_is_discarded(probe, client):
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        client.call("rpc_probe", "slow", 1.0, "late", timeout=0.3)
    assert time.monotonic() - started < 0.3 + 0.5
    eventlet.sleep(1.0)                                   # the late reply arrives meanwhile
    assert client.call("rpc_probe", "echo", "fresh") == "fresh"


def test_a_call_nobody_took_in_time_is_never_run(container_factory, service_config, client):
    container = container_factory(Probe, service_config)
    container.start()
    assert client.call("rpc_probe", "hit", "warm-up") == "warm-up"
    container.stop()                                      # its durable queue stays
    with pytest.raises(ServiceUnavailable):
        client.call("rpc_probe", "hit", "expired", timeout=0.3)
    eventlet.sleep(0.5)
    again = container_factory(Probe, service_config)
    again.start()
    assert client.call("rpc_probe", "hit", "after") == "after"
    assert "expired" not in HITS


def test_the_client_reconnects_after_losing_the_broker(probe, amqp_uri):
    parts = urlsplit(amqp_uri)
    proxy = TcpProxy(parts.hostname, parts.port or 5672).start()
    client = RpcClient(proxy.uri(amqp_uri), timeout=1.0, connect_timeout=1.0)
    try:
        assert client.call("rpc_probe", "echo", 1) == 1
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            client.call("rpc_probe", "echo", 2)
        assert time.monotonic() - started < 1.0 + 1.0
        proxy.restore()

        def answers():
            try:
                return client.call("rpc_probe", "echo", 3) == 3
            except ServiceUnavailable:
                return False

        wait_for(answers, timeout=20, every=0.3, what="the client to reconnect")
    finally:
        client.close()
        proxy.cut()


def test_the_client_recovers_when_the_broker_closes_its_connections(container_factory,
                                                                    service_config):
    # A broker restart or `rabbitmqctl close_all_connections` closes them with
    # CONNECTION_FORCED (py-amqp's own ConnectionError family): a 503, never a
    # 500, and a fresh publisher afterwards. On a vhost of its own, so that
    # closing every connection there touches nothing else.
    vhost = service_config["CRM_DB_PREFIX"] + "_rpc_drop"
    uri = vhost_uri(vhost)
    if not uri.endswith("/" + vhost):
        pytest.skip("needs rabbitmqctl to make a vhost")
    container_factory(Probe, dict(service_config, AMQP_URI=uri)).start()
    client = RpcClient(uri, timeout=1.0, connect_timeout=1.0)
    try:
        assert client.call("rpc_probe", "echo", 1) == 1
        subprocess.run(["rabbitmqctl", "close_all_connections", "-p", vhost, "test: broker drop"],
                       check=True, capture_output=True)

        def answers():
            try:
                return client.call("rpc_probe", "echo", 2) == 2
            except ServiceUnavailable:      # the client or the service still reconnecting
                return False

        wait_for(answers, timeout=30, every=0.3, what="the client to recover")
    finally:
        client.close()
        delete_vhost(vhost)


def test_the_reply_connection_keeps_its_heartbeat_under_steady_load(probe, amqp_uri):
    # The broker drops a client that misses two heartbeats; with replies
    # arriving all the time the consumer must still send its own.
    client = RpcClient(amqp_uri, timeout=2.0, heartbeat=1)
    try:
        stop = time.monotonic() + 6.0

        def caller():
            answered = 0
            while time.monotonic() < stop:
                assert client.call("rpc_probe", "echo", answered) == answered
                answered += 1
            return answered

        callers = [eventlet.spawn(caller) for _ in range(4)]
        assert all(c.wait() > 0 for c in callers)
        assert client.reply_connections == 1      # never dropped by the broker
    finally:
        client.close()


def test_calls_are_counted_by_outcome_and_timeouts_apart(probe, client):
    from gateway import metrics

    def count(metric, *labels):
        return metric.labels(*labels)._value.get()

    before = {outcome: count(metrics.RPC_CALLS, "rpc_probe", method, outcome)
              for method, outcome in (("echo", "ok"), ("fail", "remote_error"),
                                      ("slow", "timeout"))}
    timeouts = count(metrics.RPC_TIMEOUTS, "rpc_probe", "slow")
    client.call("rpc_probe", "echo", 1)
    with pytest.raises(RemoteError):
        client.call("rpc_probe", "fail")
    with pytest.raises(ServiceUnavailable) as exc:
        client.call("rpc_probe", "slow", 1.0, "late", timeout=0.2)
    assert exc.value.timed_out
    assert count(metrics.RPC_CALLS, "rpc_probe", "echo", "ok") == before["ok"] + 1
    assert count(metrics.RPC_CALLS, "rpc_probe", "fail", "remote_error") == \
        before["remote_error"] + 1
    assert count(metrics.RPC_CALLS, "rpc_probe", "slow", "timeout") == before["timeout"] + 1
    assert count(metrics.RPC_TIMEOUTS, "rpc_probe", "slow") == timeouts + 1
    eventlet.sleep(1.0)                                   # the late reply, discarded
