"""/api/events/stream: new leads as server-sent events (docs/event-stream.md)."""
import json
import threading

from gateway.errors import unavailable
from gateway.openapi import operation
from gateway.streams import ENDED, StreamUnavailable

CONNECTED = b": connected\n\n"
HEARTBEAT = b": heartbeat\n\n"


def lead_created_frame(event):
    lines = []
    if event.event_id and "\n" not in event.event_id and "\r" not in event.event_id:
        lines.append("id: " + event.event_id)
    lines.append("event: lead.created")
    lines.append("data: " + json.dumps(event.lead, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class EventStreamBody:
    """The response body, a WSGI iterable. The server calls close() when the
    stream ends or a write to a departed client fails; close() gives back the
    subscription and the slot. A class rather than a generator: closing a
    generator that never started skips its `finally`, and the slot would leak."""

    def __init__(self, subscription, heartbeat, release):
        self.subscription = subscription
        self.heartbeat = heartbeat
        self._release = release
        self._started = False
        self._closed = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed:
            raise StopIteration
        if not self._started:
            self._started = True
            return CONNECTED        # at once, so the client sees the headers
        item = self.subscription.get(self.heartbeat)
        if item is ENDED:
            raise StopIteration
        return HEARTBEAT if item is None else lead_created_frame(item)

    def close(self):
        if not self._closed:
            self._closed = True
            self.subscription.close()
            self._release()


class EventStream:
    """Each open stream holds a server thread for its whole life, so a
    process serves at most `max_streams` of them (gunicorn.conf.py gives it
    that many threads on top of those for ordinary requests)."""

    def __init__(self, hub, max_streams, heartbeat):
        self.hub = hub
        self.heartbeat = heartbeat
        self.slots = threading.BoundedSemaphore(max_streams)

    @operation("New leads as server-sent events", response=str, content_type="text/event-stream",
               tags=["events"],
               description="`event: lead.created` with the lead as `data` (one line of JSON) "
                           "and its event id as `id`, for every lead created from the moment "
                           "the stream opens; a `: heartbeat` comment every 15 s. The API key "
                           "may also come as `?key=<key>` (EventSource cannot send headers). "
                           "503 when the gateway has no free stream slot or the broker is "
                           "unreachable. Refetch the lead list when the stream reconnects: "
                           "events are not replayed.")
    def on_get(self, req, resp):
        if not self.slots.acquire(blocking=False):
            raise unavailable("Too many open event streams; try again shortly.")
        subscription = None
        try:
            subscription = self.hub.subscribe()
        except StreamUnavailable:
            raise unavailable("The event stream is unavailable; try again shortly.")
        finally:
            if subscription is None:
                self.slots.release()
        resp.content_type = "text/event-stream"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")      # nginx: pass each event on at once
        resp.stream = EventStreamBody(subscription, self.heartbeat, self.slots.release)
