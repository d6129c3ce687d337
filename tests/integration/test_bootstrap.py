"""crm_common.bootstrap declares event-handler queues before services start,
so an event published first is kept, and the services' own declares agree."""
import json
import os
import subprocess
import sys
import time
import uuid

import eventlet
import pytest
from nameko.events import event_handler

from crm_common.bootstrap import declare, event_handlers, stack_service_classes, topology
from crm_common.reliable_events import parked_queue_name, reliable_event_handler, retry_queue_name
from crm_common.testing import ROOT, publish_event, queue_depth, vhost_queues, wait_for


def make_service(source):
    calls = []

    class Subscriber:
        name = "bootstrap_probe"

        @event_handler(source, "plain")
        def on_plain(self, payload):
            calls.append(("plain", payload))

        @reliable_event_handler(source, "reliable", max_attempts=3, retry_delay=0.2)
        def on_reliable(self, payload):
            calls.append(("reliable", payload))

    Subscriber.calls = calls
    return Subscriber


@pytest.fixture
def source():
    return "boot_%s" % uuid.uuid4().hex[:8]


def start_in_time(container_factory, service_config, cls, seconds=10):
    """Start a container; a queue declared with other arguments makes nameko's
    consumer retry forever (PRECONDITION_FAILED), so the start would hang."""
    container = container_factory(cls, service_config)
    with eventlet.Timeout(seconds):
        container.start()
    return container


def test_an_event_published_before_its_subscriber_starts_is_handled_once_it_starts(
        container_factory, service_config, amqp_uri, source):
    cls = make_service(source)
    names = declare([cls], amqp_uri)
    plain_q = "evt-%s-plain--bootstrap_probe.on_plain" % source
    reliable_q = "evt-%s-reliable--bootstrap_probe.on_reliable" % source
    assert set(names) == {
        plain_q, reliable_q, retry_queue_name(reliable_q, 200), retry_queue_name(reliable_q, 400),
        parked_queue_name(reliable_q)}

    publish_event(amqp_uri, source, "plain", {"n": 1})
    publish_event(amqp_uri, source, "reliable", {"n": 2})
    assert queue_depth(amqp_uri, plain_q) == 1 and queue_depth(amqp_uri, reliable_q) == 1

    start_in_time(container_factory, service_config, cls)
    wait_for(lambda: len(cls.calls) == 2, what="both early events")
    time.sleep(0.3)
    assert sorted(cls.calls) == [("plain", {"n": 1}), ("reliable", {"n": 2})]


def test_bootstrap_declares_what_nameko_declares(container_factory, service_config, amqp_uri,
                                                 source):
    cls = make_service(source)
    declared = set(declare([cls], amqp_uri))
    mine = {q for q in vhost_queues(amqp_uri) if source in q}
    assert mine == declared
    reliable_q = "evt-%s-reliable--bootstrap_probe.on_reliable" % source
    assert declared == {"evt-%s-plain--bootstrap_probe.on_plain" % source, reliable_q,
                        retry_queue_name(reliable_q, 200), retry_queue_name(reliable_q, 400),
                        parked_queue_name(reliable_q)}

    container = start_in_time(container_factory, service_config, cls)
    # The service declared nothing new, and bootstrap again (services running) agrees.
    assert {q for q in vhost_queues(amqp_uri) if source in q} == declared
    assert set(declare([cls], amqp_uri)) == declared
    publish_event(amqp_uri, source, "reliable", {"n": 3})
    wait_for(lambda: cls.calls == [("reliable", {"n": 3})], what="the event")
    container.stop()


def test_a_queue_declared_with_other_arguments_is_refused(amqp_uri, source):
    # The failure bootstrap must never cause: same name, other arguments.
    from kombu import Connection, Queue

    cls = make_service(source)
    [queue] = [q for q in topology([cls], {"AMQP_URI": amqp_uri}) if q.name.endswith("on_plain")]
    with Connection(amqp_uri) as conn:
        Queue(queue.name, durable=True, queue_arguments={"x-message-ttl": 1000})(
            conn.channel()).declare()
    with pytest.raises(Exception) as exc:
        declare([cls], amqp_uri)
    assert "PRECONDITION_FAILED" in str(exc.value)


def test_the_stack_s_services_are_found_and_declared(container_factory, service_config, amqp_uri):
    classes = {cls.name: cls for cls in stack_service_classes()}
    assert {"leads", "contacts", "tasks", "campaigns"} <= set(classes)
    [handler] = event_handlers(classes["tasks"], {"AMQP_URI": amqp_uri})
    assert handler.queue.name == "evt-leads-lead_deleted--tasks.on_lead_deleted"

    names = declare(list(classes.values()), amqp_uri)
    q = "evt-leads-lead_deleted--tasks.on_lead_deleted"
    assert q in names and parked_queue_name(q) in names
    assert set(names) <= set(vhost_queues(amqp_uri))
    # The real service starts on the declared queues (no PRECONDITION_FAILED).
    start_in_time(container_factory, service_config, classes["tasks"], seconds=30)


def test_the_bootstrap_command_declares_every_stack_queue(amqp_uri):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "libs"), AMQP_URI=amqp_uri)
    done = subprocess.run([sys.executable, "-m", "crm_common.bootstrap"], capture_output=True,
                          text=True, env=env, cwd="/")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]    # JSON, as every process
    assert any("queue(s) declared" in line["message"] for line in lines)
    assert "evt-leads-lead_deleted--tasks.on_lead_deleted.parked" in vhost_queues(amqp_uri)


def test_the_bootstrap_command_fails_on_an_import_error(amqp_uri):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "libs"), AMQP_URI=amqp_uri)
    done = subprocess.run([sys.executable, "-m", "crm_common.bootstrap", "--service",
                           "no_such_module_%s" % uuid.uuid4().hex[:6]],
                          capture_output=True, text=True, env=env, cwd="/")
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr
