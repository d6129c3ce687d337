"""@reliable_event_handler on a real broker: a failing handler is retried
after a delay, then parked (never lost, never looping), and replayed."""
import subprocess
import sys
import time
import uuid

import pytest

from crm_common.parked import list_parked, replay_parked
from crm_common.reliable_events import (ReliableEventHandler, parked_queue_name,
                                        reliable_event_handler, retry_queue_name)
from crm_common.testing import (ROOT, publish_event, queue_depth, vhost_connections,
                                vhost_queues, wait_for)


class Boom(Exception):
    pass


def make_service(source, behaviour, **options):
    """A subscriber of `<source>.happened` whose handler runs `behaviour`
    (a list: each call pops the next outcome; an exception is raised)."""
    calls = []

    class Subscriber:
        name = "reliable_probe"

        @reliable_event_handler(source, "happened", **options)
        def on_happened(self, payload):
            calls.append((time.monotonic(), payload))
            outcome = behaviour.pop(0) if len(behaviour) > 1 else behaviour[0]
            if isinstance(outcome, Exception):
                raise outcome

    Subscriber.calls = calls
    return Subscriber


def handler_queue(source):
    return "evt-%s-happened--reliable_probe.on_happened" % source


@pytest.fixture
def source():
    return "probe_%s" % uuid.uuid4().hex[:8]


def start(container_factory, service_config, cls):
    container = container_factory(cls, service_config)
    container.start()
    return container


def test_a_handler_failing_twice_then_succeeding_handles_the_event_once_after_the_delays(
        container_factory, service_config, amqp_uri, source):
    cls = make_service(source, [Boom("db down"), Boom("db down"), None],
                       max_attempts=5, retry_delay=0.2, backoff=2.0)
    start(container_factory, service_config, cls)
    marker = uuid.uuid4().hex
    sent = time.monotonic()
    publish_event(amqp_uri, source, "happened", {"marker": marker},
                  headers={"nameko.call_id_stack": ["gateway.http.req-1"]})
    wait_for(lambda: len(cls.calls) >= 3, what="three attempts")
    time.sleep(0.8)                                        # nothing more comes
    times = [t for t, _ in cls.calls]
    assert [p for _, p in cls.calls] == [{"marker": marker}] * 3
    # growing delays: 0.2 s after the first failure, 0.4 s after the second
    assert times[1] - times[0] >= 0.18 and times[2] - times[1] >= 0.38
    assert times[0] - sent < 2
    q = handler_queue(source)
    assert queue_depth(amqp_uri, q) == 0
    assert queue_depth(amqp_uri, parked_queue_name(q)) == 0
    assert queue_depth(amqp_uri, retry_queue_name(q, 200)) == 0
    assert queue_depth(amqp_uri, retry_queue_name(q, 400)) == 0


def test_a_handler_always_failing_is_parked_with_its_error_then_replayed(
        container_factory, service_config, amqp_uri, source):
    behaviour = [Boom("no such thing")]
    cls = make_service(source, behaviour, max_attempts=3, retry_delay=0.2, backoff=1.0)
    start(container_factory, service_config, cls)
    q = handler_queue(source)
    publish_event(amqp_uri, source, "happened", {"n": 1},
                  headers={"nameko.call_id_stack": ["gateway.http.req-2"]})
    wait_for(lambda: queue_depth(amqp_uri, parked_queue_name(q)) == 1, what="the event parked")
    time.sleep(0.6)
    assert len(cls.calls) == 3                               # max_attempts, then no loop

    for _ in range(2):                                       # listing leaves it in place
        [entry] = list_parked(amqp_uri, q)
        assert entry["body"] == {"n": 1}
        assert entry["attempts"] == 3
        assert entry["error_type"] == "Boom" and entry["error_message"] == "no such thing"
        assert (entry["service"], entry["method"]) == ("reliable_probe", "on_happened")
        assert entry["handler_queue"] == q
        assert entry["headers"]["nameko.call_id_stack"] == ["gateway.http.req-2"]
        assert "Boom" in entry["headers"]["x-crm-error-traceback"]
        assert not [k for k in entry["headers"] if k.startswith("x-death")]
    assert queue_depth(amqp_uri, parked_queue_name(q)) == 1

    behaviour[:] = [None]                                    # fixed
    assert replay_parked(amqp_uri, parked_queue_name(q)) == 1
    wait_for(lambda: len(cls.calls) == 4, what="the replayed event")
    time.sleep(0.5)
    assert len(cls.calls) == 4 and cls.calls[-1][1] == {"n": 1}
    assert queue_depth(amqp_uri, parked_queue_name(q)) == 0
    assert list_parked(amqp_uri, q) == []


def test_a_replayed_event_that_fails_again_gets_its_full_attempts_and_is_parked_again(
        container_factory, service_config, amqp_uri, source):
    cls = make_service(source, [Boom("still broken")], max_attempts=2, retry_delay=0.1)
    start(container_factory, service_config, cls)
    q = handler_queue(source)
    publish_event(amqp_uri, source, "happened", {"n": 2})
    wait_for(lambda: queue_depth(amqp_uri, parked_queue_name(q)) == 1, what="the event parked")
    assert replay_parked(amqp_uri, q) == 1
    wait_for(lambda: len(cls.calls) == 4, what="two more attempts")
    wait_for(lambda: queue_depth(amqp_uri, parked_queue_name(q)) == 1, what="parked again")
    [entry] = list_parked(amqp_uri, q)
    assert entry["attempts"] == 2


def test_an_exception_in_park_on_is_parked_at_once(
        container_factory, service_config, amqp_uri, source):
    cls = make_service(source, [ValueError("malformed")], max_attempts=5, retry_delay=0.1,
                       park_on=(ValueError,))
    start(container_factory, service_config, cls)
    publish_event(amqp_uri, source, "happened", {"n": 3})
    q = handler_queue(source)
    wait_for(lambda: queue_depth(amqp_uri, parked_queue_name(q)) == 1, what="the event parked")
    assert len(cls.calls) == 1
    assert list_parked(amqp_uri, q)[0]["error_type"] == "ValueError"


def test_a_successful_handler_is_unaffected(container_factory, service_config, amqp_uri, source):
    cls = make_service(source, [None], max_attempts=3, retry_delay=0.2)
    start(container_factory, service_config, cls)
    for n in range(5):
        publish_event(amqp_uri, source, "happened", {"n": n})
    wait_for(lambda: len(cls.calls) == 5, what="five events")
    time.sleep(0.5)
    assert sorted(p["n"] for _, p in cls.calls) == list(range(5))
    q = handler_queue(source)
    assert queue_depth(amqp_uri, q) == 0
    assert queue_depth(amqp_uri, parked_queue_name(q)) == 0


def test_the_handler_queue_is_nameko_s_durable_queue(container_factory, service_config, source):
    container = start(container_factory, service_config,
                      make_service(source, [None], max_attempts=3, retry_delay=0.2))
    [entrypoint] = [e for e in container.entrypoints if isinstance(e, ReliableEventHandler)]
    assert entrypoint.queue.name == handler_queue(source)
    assert entrypoint.queue.durable and not entrypoint.queue.auto_delete
    assert not entrypoint.queue.queue_arguments and not entrypoint.queue.exclusive
    assert entrypoint.queue.routing_key == "happened"
    assert entrypoint.queue.exchange.name == "%s.events" % source


def test_retries_open_no_queue_per_message_and_no_lasting_connection(
        container_factory, service_config, amqp_uri, source):
    before = vhost_connections(amqp_uri)
    behaviour = [Boom("x")]
    cls = make_service(source, behaviour, max_attempts=3, retry_delay=0.1, backoff=1.0)
    container = start(container_factory, service_config, cls)
    for n in range(10):
        publish_event(amqp_uri, source, "happened", {"n": n})
    q = handler_queue(source)
    wait_for(lambda: queue_depth(amqp_uri, parked_queue_name(q)) == 10, what="ten parked")
    assert len(cls.calls) == 30
    mine = [name for name in vhost_queues(amqp_uri) if source in name]
    assert mine == sorted([q, retry_queue_name(q, 100), parked_queue_name(q)])
    [entrypoint] = [e for e in container.entrypoints if isinstance(e, ReliableEventHandler)]
    publisher = entrypoint.retry_publisher._publisher
    assert publisher._conn is not None                      # one connection, reused
    container.stop()
    assert publisher._conn is None
    list_parked(amqp_uri, q)
    replay_parked(amqp_uri, q, limit=1)
    wait_for(lambda: vhost_connections(amqp_uri) <= before, timeout=15,
             what="every connection closed")


def test_misconfigurations_are_refused():
    from nameko.events import BROADCAST, EventHandlerConfigurationError

    with pytest.raises(EventHandlerConfigurationError):
        ReliableEventHandler("a", "b", requeue_on_error=True)
    with pytest.raises(EventHandlerConfigurationError):
        ReliableEventHandler("a", "b", handler_type=BROADCAST, reliable_delivery=False)
    with pytest.raises(EventHandlerConfigurationError):
        ReliableEventHandler("a", "b", max_attempts=0)


def test_delays_grow_up_to_the_maximum():
    handler = ReliableEventHandler("a", "b", max_attempts=6, retry_delay=1.0, backoff=2.0,
                                   max_delay=5.0)
    assert [handler.delay_ms(n) for n in range(1, 6)] == [1000, 2000, 4000, 5000, 5000]
    listed = ReliableEventHandler("a", "b", max_attempts=4, retry_delay=(0.5, 3))
    assert [listed.delay_ms(n) for n in range(1, 4)] == [500, 3000, 3000]


def test_the_parked_cli_lists_and_replays(amqp_uri, container_factory, service_config, source):
    cls = make_service(source, [Boom("cli")], max_attempts=1)
    start(container_factory, service_config, cls)
    publish_event(amqp_uri, source, "happened", {"n": 9})
    q = handler_queue(source)
    wait_for(lambda: queue_depth(amqp_uri, parked_queue_name(q)) == 1, what="the event parked")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "crm_common.parked", *args,
                               "--amqp-uri", amqp_uri], capture_output=True, text=True,
                              env={"PYTHONPATH": ROOT + "/libs"}, check=True).stdout

    out = cli("list", "--queue", q)
    assert "1 parked" in out and '"error_message": "cli"' in out and '"n": 9' in out
    assert queue_depth(amqp_uri, parked_queue_name(q)) == 1
    assert "1 replayed" in cli("replay", "--queue", parked_queue_name(q))
    wait_for(lambda: len(cls.calls) == 2, what="the replayed event")
