"""New leads for the event stream: one broker consumer per gateway process,
fanned out to every open stream of that process.

The source of truth is the leads service's `lead_created` event (exchange
`leads.events`), so a stream hears of every new lead, whoever created it.
The consumer thread starts at the first subscriber (after gunicorn's fork)
and binds one exclusive, auto-delete queue; nothing outlives the process.

Events published while the consumer is not bound are missed. So when it loses
the broker it ends every open stream: their clients reconnect (EventSource
does so by itself) and refetch what they show. Each stream has a bounded
buffer; a stream that falls that far behind (a stuck client) is ended too.
"""
import logging
import os
import queue
import socket
import threading
import uuid
from typing import NamedTuple

from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Exchange, Queue
from kombu.exceptions import ChannelError, OperationalError

from crm_common.amqp import connect
from crm_common.events import events_exchange_name

log = logging.getLogger(__name__)

# py-amqp's ConnectionError family is not the builtin one (see gateway.rpc).
CONNECTION_ERRORS = (OSError, ConnectionError, AmqpConnectionError, OperationalError, ChannelError,
                     socket.timeout, EOFError)
ENDED = object()          # what Subscription.get returns once the stream must end


class StreamUnavailable(Exception):
    """No stream can be opened now (broker unreachable, or shutting down): a 503."""


class LeadCreated(NamedTuple):
    event_id: str
    lead: dict


class Subscription:
    """One open stream's view of the hub: a bounded queue of events."""

    def __init__(self, fanout, buffer):
        self._fanout = fanout
        self._queue = queue.Queue(buffer)
        self.ended = False

    def get(self, timeout):
        """The next LeadCreated, None after `timeout` s without one, or ENDED."""
        if self.ended:
            return ENDED
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return ENDED if self.ended else None

    def close(self):
        """The stream is over: stop delivering to it (idempotent)."""
        self._fanout.remove(self)

    def _offer(self, event):
        try:
            self._queue.put_nowait(event)
            return True
        except queue.Full:
            return False

    def _end(self):
        self.ended = True
        try:                      # wakes a reader waiting in get(); a full queue has none
            self._queue.put_nowait(ENDED)
        except queue.Full:
            pass


class FanOut:
    """Every open subscription of the process; publish() never blocks."""

    def __init__(self, buffer=256):
        self.buffer = buffer
        self._subscribers = set()
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._subscribers)

    def add(self):
        subscription = Subscription(self, self.buffer)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def remove(self, subscription):
        with self._lock:
            self._subscribers.discard(subscription)

    def publish(self, event):
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            if not subscription._offer(event):
                # Its client reads slower than leads arrive: waiting would
                # hold up every other stream, so it ends (and reconnects).
                self.remove(subscription)
                subscription._end()
                log.warning("event stream dropped: %d events behind", self.buffer)

    def end_all(self):
        with self._lock:
            subscribers, self._subscribers = self._subscribers, set()
        for subscription in subscribers:
            subscription._end()


class LeadStreamHub:
    def __init__(self, amqp_uri, ready_timeout=3.0, connect_timeout=3.0, heartbeat=10,
                 buffer=256):
        self.amqp_uri = amqp_uri
        self.ready_timeout = ready_timeout
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self.exchange = Exchange(events_exchange_name("leads"), type="topic", durable=True)
        self.fanout = FanOut(buffer)
        self.connections = 0             # how often the consumer (re)connected
        self._bound = threading.Event()
        self._closed = threading.Event()
        self._ending = False
        self._thread = None
        self._pid = None
        self._start_lock = threading.Lock()

    def subscribe(self):
        """A Subscription that receives every lead created from now on, or
        StreamUnavailable when the consumer is not bound within ready_timeout."""
        if self._ending:
            raise StreamUnavailable("the gateway is shutting down")
        self._start()
        # Registered before waiting: whatever the bound queue receives from
        # now on reaches this subscription.
        subscription = self.fanout.add()
        if not self._bound.wait(self.ready_timeout):
            subscription.close()
            raise StreamUnavailable("the broker is unreachable")
        return subscription

    def end_streams(self):
        """End every open stream and refuse new ones (on SIGTERM: streams
        never end by themselves and would hold the worker's graceful exit)."""
        self._ending = True
        self.fanout.end_all()

    def close(self):
        """Stop the consumer and release its connection (at worker exit)."""
        self.end_streams()
        self._closed.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=3)

    def _start(self):
        # Once per process, also after a fork (the parent's thread is not ours).
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._bound.clear()
            self._thread = threading.Thread(target=self._consume_forever, name="lead-stream",
                                            daemon=True)
            self._thread.start()

    def _consume_forever(self):
        backoff = 0.2
        while not self._closed.is_set():
            conn = None
            try:
                conn = connect(self.amqp_uri, self.connect_timeout, heartbeat=self.heartbeat)
                # A new name per connection: after a network cut the broker
                # may still hold the old exclusive queue for a while.
                bound_queue = Queue("gateway.stream-%s" % uuid.uuid4().hex, exchange=self.exchange,
                                    routing_key="lead_created", exclusive=True, auto_delete=True)
                with conn.Consumer(queues=[bound_queue], callbacks=[self._on_message],
                                   on_decode_error=self._on_decode_error, accept=["json"],
                                   no_ack=True):
                    self._bound.set()
                    self.connections += 1
                    backoff = 0.2
                    log.info("lead stream listening on %s", bound_queue.name)
                    while not self._closed.is_set():
                        try:
                            conn.drain_events(timeout=1.0)
                        except socket.timeout:
                            pass
                        # Every pass, as in gateway.rpc: under a steady flow of
                        # events drain_events never times out.
                        conn.heartbeat_check()
            except CONNECTION_ERRORS as exc:
                if not self._closed.is_set():
                    log.warning("lead stream: no broker connection (%s); retrying in %.1f s",
                                exc, backoff)
            except Exception:  # never let the thread die: streams would hear nothing
                log.exception("lead stream: unexpected error in the consumer")
            finally:
                # Cleared before ending the streams, so a stream subscribing
                # meanwhile waits for the next binding rather than missing events.
                was_bound = self._bound.is_set()
                self._bound.clear()
                if was_bound and len(self.fanout):
                    log.warning("lead stream: ending %d open streams (they would miss events)",
                                len(self.fanout))
                    self.fanout.end_all()
                if conn is not None:
                    try:
                        conn.release()
                    except Exception:
                        log.debug("releasing a broken connection", exc_info=True)
            if not self._closed.is_set():
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _on_message(self, body, message):
        lead = body.get("lead") if isinstance(body, dict) else None
        if not isinstance(lead, dict):
            log.warning("lead stream: ignoring a lead_created event without a lead")
            return
        self.fanout.publish(LeadCreated(str(body.get("event_id") or ""), lead))

    def _on_decode_error(self, message, exc):
        log.warning("lead stream: ignoring an undecodable message (%s)", exc)
