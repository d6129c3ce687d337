"""The lead stream hub on a real broker: every `leads.lead_created` event
reaches every open stream, in order; broker trouble is a bounded 503 or an
ended stream, never a silent gap."""
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
from falcon import testing

from crm_common.config import Settings
from crm_common.testing import TcpProxy, free_port, publish_event, vhost_queues, wait_for
from gateway.app import create_app
from gateway.streams import ENDED, LeadStreamHub, StreamUnavailable

KEY = "crm_stream_test_key"


class OneKey:
    def verify(self, key):
        return key == KEY


def lead_created(n):
    return {"event_id": str(uuid.uuid4()), "occurred_at": "2024-03-10T10:00:00.000Z",
            "version": 1, "lead": {"id": str(uuid.uuid4()), "name": "Lead %d" % n,
                                   "email": "lead%d@example.com" % n, "status": "new"}}


def stream_queues(amqp_uri):
    return [name for name in vhost_queues(amqp_uri) if name.startswith("gateway.stream-")]


@pytest.fixture
def hub(amqp_uri):
    hub = LeadStreamHub(amqp_uri)
    yield hub
    hub.close()


def test_every_subscriber_gets_every_new_lead_in_order(hub, amqp_uri):
    subscriptions = [hub.subscribe() for _ in range(3)]
    published = [lead_created(n) for n in range(5)]
    for body in published:
        publish_event(amqp_uri, "leads", "lead_created", body)
    publish_event(amqp_uri, "leads", "lead_updated", lead_created(99))     # not a new lead

    for subscription in subscriptions:
        received = [subscription.get(5) for _ in published]
        assert [e.event_id for e in received] == [b["event_id"] for b in published]
        assert [e.lead for e in received] == [b["lead"] for b in published]
        assert subscription.get(0.3) is None
        subscription.close()
    assert len(hub.fanout) == 0


def test_the_app_streams_a_lead_published_after_the_first_bytes(hub, amqp_uri):
    app = create_app(Settings(amqp_uri=amqp_uri), None, OneKey(), hub)
    environ = testing.create_environ(path="/api/events/stream", query_string="key=" + KEY)
    statuses = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        chunks = iter(body)
        assert statuses == ["200 OK"] and next(chunks) == b": connected\n\n"
        event = lead_created(1)
        publish_event(amqp_uri, "leads", "lead_created", event)
        frame = next(chunks).decode()
        assert frame.startswith("id: %s\nevent: lead.created\ndata: " % event["event_id"])
        assert json.loads(frame.split("\n")[2][len("data: "):]) == event["lead"]
    finally:
        body.close()
    assert len(hub.fanout) == 0


def test_the_hubs_queue_goes_when_it_closes(amqp_uri):
    hub = LeadStreamHub(amqp_uri)
    hub.subscribe().close()
    assert len(stream_queues(amqp_uri)) == 1
    hub.close()
    wait_for(lambda: not stream_queues(amqp_uri), timeout=10, every=0.3,
             what="the stream queue to be deleted")


def test_an_unreachable_broker_is_a_503_within_the_bound():
    hub = LeadStreamHub("amqp://guest:guest@127.0.0.1:%d//" % free_port(), ready_timeout=1.0,
                        connect_timeout=0.5)
    app = create_app(Settings(), None, OneKey(), hub)
    try:
        started = time.monotonic()
        result = testing.TestClient(app).simulate_get("/api/events/stream", params={"key": KEY})
        assert time.monotonic() - started < 1.0 + 1.0
        assert result.status_code == 503
        assert result.headers["retry-after"] == "5"
        assert result.json["title"] == "Service Unavailable"
    finally:
        hub.close()


def test_losing_the_broker_ends_open_streams_and_they_work_again_after_it(amqp_uri):
    parts = urlsplit(amqp_uri)
    proxy = TcpProxy(parts.hostname, parts.port or 5672).start()
    hub = LeadStreamHub(proxy.uri(amqp_uri), ready_timeout=1.0, connect_timeout=1.0)
    try:
        subscription = hub.subscribe()
        proxy.cut()
        # Events published now would be missed: the stream ends so that its
        # client reconnects and refetches, rather than wait for nothing.
        assert subscription.get(5) is ENDED
        with pytest.raises(StreamUnavailable):
            hub.subscribe()
        proxy.restore()

        def subscribed():
            try:
                return hub.subscribe()
            except StreamUnavailable:
                return None

        again = wait_for(subscribed, timeout=20, every=0.3, what="the hub to reconnect")
        event = lead_created(2)
        publish_event(amqp_uri, "leads", "lead_created", event)
        assert again.get(5).event_id == event["event_id"]
        assert hub.connections == 2
    finally:
        hub.close()
        proxy.cut()
