"""crm_common.telemetry in real nameko containers on a real broker: one JSON
line per entrypoint run carrying the correlation id it was given (forwarded
on the worker's own calls and to event handlers), and the metrics endpoint,
which answers while every worker is busy."""
import logging
import urllib.request

import eventlet
import pytest
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from crm_common.reliable_events import reliable_event_handler
from crm_common.rpc import RpcClient as ServiceRpcClient
from crm_common.telemetry import Telemetry
from crm_common.testing import free_port, metric_samples, publish_event, wait_for
from gateway.rpc import RemoteError, RpcClient, ServiceUnavailable

log = logging.getLogger("telemetry_probe")
HANDLED = []


class Echo:
    name = "telemetry_echo"
    telemetry = Telemetry()

    @rpc
    def echo(self, value):
        log.info("echoing")
        return value


class Probe:
    name = "telemetry_probe"
    telemetry = Telemetry()
    echo = ServiceRpcClient("telemetry_echo", timeout=5)

    @rpc
    def relay(self, value):
        log.info("relaying %s", value)
        return self.echo.echo(value)

    @rpc(expected_exceptions=Unavailable)
    def refuse(self):
        raise Unavailable("not now")

    @rpc
    def crash(self):
        raise ValueError("broken")

    @rpc
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return seconds

    @reliable_event_handler("telemetry_source", "thing_happened")
    def on_thing(self, payload):
        HANDLED.append(payload["event_id"])
        log.info("handled a thing")


@pytest.fixture
def metrics_port():
    return free_port()


@pytest.fixture
def probes(container_factory, service_config, metrics_port):
    echo = container_factory(Echo, service_config)
    probe = container_factory(Probe, dict(service_config, max_workers=1,
                                          METRICS_PORT=metrics_port))
    echo.start()
    probe.start()
    return probe


@pytest.fixture
def client(amqp_uri):
    client = RpcClient(amqp_uri, timeout=5.0)
    yield client
    client.close()


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return metric_samples(r.read().decode())


def calls(samples, entrypoint, outcome):
    return samples.get(("crm_entrypoint_calls_total", tuple(sorted({
        "service": "telemetry_probe", "entrypoint": entrypoint, "kind": "rpc",
        "outcome": outcome}.items()))), 0.0)


def test_each_call_writes_one_line_with_the_correlation_id_it_was_given(probes, client,
                                                                         log_lines):
    context = {"correlation_id": "req-tele-1", "call_id_stack": ["gateway.http.req-tele-1"]}
    assert client.call("telemetry_probe", "relay", 5, context=context) == 5

    mine = [e for e in log_lines() if e.get("correlation_id") == "req-tele-1"]
    done = {e["entrypoint"]: e for e in mine if e["logger"] == "crm.worker"}
    assert set(done) == {"relay", "echo"}
    assert done["relay"]["service"] == "telemetry_probe" and done["relay"]["kind"] == "rpc"
    assert done["relay"]["outcome"] == "ok" and done["relay"]["duration_ms"] >= 0
    # the RPC the worker made carried the id on, to a worker of another service
    assert done["echo"]["service"] == "telemetry_echo"
    assert done["echo"]["call_id"] != done["relay"]["call_id"]
    # and what the handlers themselves logged says which request it was for
    messages = {e["message"] for e in mine}
    assert {"relaying 5", "echoing"} <= messages


def test_a_call_without_a_correlation_id_gets_the_gateway_request_id_or_its_own(
        probes, client, log_lines):
    client.call("telemetry_probe", "slow", 0, context={
        "call_id_stack": ["gateway.http.req-tele-2"]})
    client.call("telemetry_probe", "slow", 0)
    done = [e for e in log_lines()
            if e["logger"] == "crm.worker" and e["entrypoint"] == "slow"]
    assert done[0]["correlation_id"] == "req-tele-2"
    assert done[1]["correlation_id"] == done[1]["call_id"]       # it starts its own


def test_an_event_handler_line_carries_the_correlation_id_of_the_event(probes, amqp_uri,
                                                                        log_lines):
    event_id = "7d1a6c1e-2f0b-4b7e-9a57-3e1f1ac0b001"
    publish_event(amqp_uri, "telemetry_source", "thing_happened", {"event_id": event_id},
                  headers={"nameko.correlation_id": "req-tele-3"})
    wait_for(lambda: event_id in HANDLED, what="the event handled")
    wait_for(lambda: any(e["logger"] == "crm.worker" and e.get("event_id") == event_id
                         for e in log_lines()), what="its line")
    [line] = [e for e in log_lines()
              if e["logger"] == "crm.worker" and e.get("event_id") == event_id]
    assert line["correlation_id"] == "req-tele-3" and line["kind"] == "event"
    assert line["event_type"] == "telemetry_source.thing_happened"
    assert any(e["message"] == "handled a thing" and e["correlation_id"] == "req-tele-3"
               for e in log_lines())


def test_outcomes_are_counted_and_business_errors_are_not_faults(probes, client, metrics_port,
                                                                  log_lines):
    before = scrape(metrics_port)
    client.call("telemetry_probe", "slow", 0)
    with pytest.raises(RemoteError):
        client.call("telemetry_probe", "refuse")
    with pytest.raises(RemoteError):
        client.call("telemetry_probe", "crash")
    after = scrape(metrics_port)
    assert calls(after, "slow", "ok") - calls(before, "slow", "ok") == 1
    assert calls(after, "refuse", "expected_error") - calls(before, "refuse", "expected_error") == 1
    assert calls(after, "crash", "error") - calls(before, "crash", "error") == 1
    key = ("crm_entrypoint_duration_seconds_count", tuple(sorted({
        "service": "telemetry_probe", "entrypoint": "slow", "kind": "rpc"}.items())))
    assert after[key] - before.get(key, 0) == 1
    levels = {e["entrypoint"]: e["level"] for e in log_lines() if e["logger"] == "crm.worker"
              and e["entrypoint"] in ("refuse", "crash")}
    assert levels == {"refuse": "info", "crash": "error"}
    # process metrics come with prometheus-client
    assert any(name == "process_resident_memory_bytes" for name, _ in after)


def test_the_metrics_answer_while_every_worker_is_busy(probes, client, metrics_port):
    busy = eventlet.spawn(client.call, "telemetry_probe", "slow", 2.0)
    eventlet.sleep(0.3)
    with pytest.raises(ServiceUnavailable):       # its one worker is taken
        client.call("telemetry_probe", "slow", 0, timeout=0.5)
    assert scrape(metrics_port)
    assert busy.wait() == 2.0
