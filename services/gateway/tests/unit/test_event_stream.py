"""GET /api/events/stream (contract section 4): the framing, auth, the
per-process cap and the release of a stream's slot, with a hub fed directly
(the broker side is in tests/integration/test_event_stream.py)."""
import dataclasses
import json
import time

import pytest
from falcon import testing

from gateway.app import create_app
from gateway.streams import ENDED, FanOut, LeadCreated, LeadStreamHub, StreamUnavailable

PATH = "/api/events/stream"


class FakeHub:
    """LeadStreamHub's interface around a real FanOut, without a broker."""

    def __init__(self):
        self.fanout = FanOut(buffer=4)
        self.down = False

    def subscribe(self):
        if self.down:
            raise StreamUnavailable("the broker is unreachable")
        return self.fanout.add()

    def publish(self, event_id, lead):
        self.fanout.publish(LeadCreated(event_id, lead))


class Opened:
    """A response as the WSGI server sees it: status, headers, the body iterable."""

    def __init__(self, app, query_string="", headers=None):
        environ = testing.create_environ(path=PATH, query_string=query_string, headers=headers)
        self.status = None
        self.headers = {}

        def start_response(status, headers, exc_info=None):
            self.status = int(status[:3])
            self.headers = {name.lower(): value for name, value in headers}

        self.body = app(environ, start_response)
        self.chunks = iter(self.body)

    def next_chunk(self):
        return next(self.chunks)

    def json(self):
        return json.loads(b"".join(self.body))

    def close(self):
        # What gunicorn does when the stream ends or its client left.
        if hasattr(self.body, "close"):
            self.body.close()


@pytest.fixture
def hub():
    return FakeHub()


@pytest.fixture
def make_app(settings, rpc, keys, hub):
    def make(max_streams=3, heartbeat=5.0):
        tuned = dataclasses.replace(settings, sse_max_streams=max_streams, sse_heartbeat=heartbeat)
        return create_app(tuned, rpc, keys, hub)
    return make


@pytest.fixture
def open_stream(make_app, auth):
    opened = []

    def open_(app=None, headers=auth, query_string=""):
        stream = Opened(app or make_app(), query_string, headers)
        opened.append(stream)
        return stream

    yield open_
    for stream in opened:
        stream.close()


def test_the_stream_answers_event_stream_headers_and_a_comment_at_once(open_stream):
    stream = open_stream()
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    assert "content-length" not in stream.headers
    assert stream.next_chunk() == b": connected\n\n"


def test_each_new_lead_is_a_lead_created_event_with_its_event_id(open_stream, hub, make_lead):
    stream = open_stream()
    stream.next_chunk()
    first, second = make_lead(name="Ann\nLee", company="Ünïcode"), make_lead(id="other")
    hub.publish("evt-1", first)
    hub.publish("evt-2", second)

    frame = stream.next_chunk()
    assert frame == ("id: evt-1\nevent: lead.created\ndata: %s\n\n"
                     % json.dumps(first, separators=(",", ":"))).encode()
    data = frame.decode().split("\n")[2]
    assert json.loads(data[len("data: "):]) == first          # one line, newline escaped
    assert stream.next_chunk().startswith(b"id: evt-2\nevent: lead.created\n")


def test_an_event_id_that_would_break_the_framing_is_left_out(open_stream, hub, make_lead):
    stream = open_stream()
    stream.next_chunk()
    hub.publish("evt\nevent: forged", make_lead())
    assert stream.next_chunk().startswith(b"event: lead.created\ndata: {")


def test_an_idle_stream_sends_a_heartbeat_comment(open_stream, make_app):
    stream = open_stream(make_app(heartbeat=0.05))
    stream.next_chunk()
    started = time.monotonic()
    assert stream.next_chunk() == b": heartbeat\n\n"
    assert stream.next_chunk() == b": heartbeat\n\n"
    assert time.monotonic() - started < 1.0


def test_without_a_key_the_stream_is_the_json_401(make_app, hub):
    app = make_app()
    for result in (testing.TestClient(app).simulate_get(PATH),
                   testing.TestClient(app).simulate_get(PATH, params={"key": "crm_wrong"})):
        assert result.status_code == 401
        assert result.json["title"] == "Unauthorized"
    assert len(hub.fanout) == 0


def test_the_key_may_come_as_a_query_parameter_or_a_header(open_stream, api_key):
    assert open_stream(headers={}, query_string="key=" + api_key).status == 200
    assert open_stream(headers={"X-API-Key": api_key}).status == 200


def test_the_query_key_is_accepted_on_the_stream_only(anon, api_key):
    assert anon.simulate_get("/api/leads", params={"key": api_key}).status_code == 401


def test_over_the_cap_a_stream_is_a_503_with_retry_after(open_stream, make_app, hub):
    app = make_app(max_streams=2)
    first, second = open_stream(app), open_stream(app)
    third = open_stream(app)
    assert (first.status, second.status, third.status) == (200, 200, 503)
    assert third.headers["retry-after"] == "5"
    assert third.headers["content-type"] == "application/json"
    assert "Too many open event streams" in third.json()["description"]
    assert len(hub.fanout) == 2

    first.close()
    assert open_stream(app).status == 200          # its slot is free again


def test_closing_the_body_releases_the_subscription_and_the_slot(open_stream, make_app, hub):
    app = make_app(max_streams=1)
    stream = open_stream(app)
    stream.next_chunk()
    stream.close()
    stream.close()                                  # twice is harmless
    assert len(hub.fanout) == 0
    # A body the server never iterated (closed at once) gives its slot back too.
    never_read = open_stream(app)
    never_read.close()
    again = open_stream(app)
    assert again.status == 200 and len(hub.fanout) == 1


def test_a_stream_ends_when_the_hub_ends_it(open_stream, make_app, hub):
    app = make_app(max_streams=1)
    stream = open_stream(app)
    stream.next_chunk()
    hub.fanout.end_all()
    assert list(stream.chunks) == []
    stream.close()
    assert open_stream(app).status == 200


def test_the_broker_unreachable_is_a_503_and_frees_the_slot(open_stream, make_app, hub):
    app = make_app(max_streams=1)
    hub.down = True
    refused = open_stream(app)
    assert refused.status == 503 and refused.headers["retry-after"] == "5"
    assert "unavailable" in refused.json()["description"]
    hub.down = False
    assert open_stream(app).status == 200


def test_a_subscriber_that_falls_behind_is_dropped_and_the_others_keep_theirs():
    fanout = FanOut(buffer=2)
    stuck, reader = fanout.add(), fanout.add()
    for n in range(3):
        fanout.publish(LeadCreated("e%d" % n, {"n": n}))
        assert reader.get(1).event_id == "e%d" % n
    assert stuck.get(1) is ENDED
    assert len(fanout) == 1
    fanout.publish(LeadCreated("e3", {"n": 3}))
    assert reader.get(1).event_id == "e3"


def test_a_hub_that_ends_its_streams_refuses_new_ones_without_the_broker():
    hub = LeadStreamHub("amqp://guest:guest@127.0.0.1:1//")
    hub.end_streams()
    started = time.monotonic()
    with pytest.raises(StreamUnavailable):
        hub.subscribe()
    assert time.monotonic() - started < 0.5
    assert hub._thread is None                      # it never started a consumer


def test_the_stream_is_documented_as_text_event_stream(anon):
    op = anon.simulate_get("/api/openapi.json").json["paths"][PATH]["get"]
    assert "text/event-stream" in op["responses"]["200"]["content"]
    assert {"401", "503"} <= set(op["responses"])
    assert "?key=" in op["description"]
