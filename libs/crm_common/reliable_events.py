"""Event handlers that neither lose an event nor loop on it.

nameko's `@event_handler` acks (and so loses) an event whose handler raised;
with `requeue_on_error=True` it gets the event back at once, forever: a hot
loop while the database is down, and a poison message never leaves.

`@reliable_event_handler(source, event_type, max_attempts=5, retry_delay=1.0)`
is a drop-in replacement. The handler's queue is nameko's own (same name
`evt-<source>-<event_type>--<service>.<method>`, durable, same arguments), so
switching an existing handler keeps its queue and its waiting events. When the
handler raises, the message (body and headers, with the attempt count in the
`x-crm-attempts` header) is published, with a publisher confirm, to a retry
queue `<queue>.retry.<ms>ms` whose `x-message-ttl` dead-letters it back to the
handler's queue after the delay; only then is the original acked. The delay
grows per attempt (`retry_delay * backoff ** (attempt - 1)`, at most
`max_delay`; or an explicit sequence), one retry queue per delay so that each
queue is FIFO with one TTL. After `max_attempts` failed attempts (or at once
for an exception in `park_on`) the message is published to the durable
parking queue `<queue>.parked` with the error recorded in its headers, then
acked: never lost, never looping. `crm_common.parked` lists and replays parked
messages. If the republish itself fails (broker trouble), the original is
requeued after `pause_on_publish_error` seconds: at least once, never lost.

`crm_common.bootstrap` declares all of these queues before services start.

Test only: `CRM_FAULT_CRASH=reliable_events.before_ack` (see `crash_point`)
makes a process exit at once after a handler returned and before its message
is acked, for the fault suite (docs/faults.md). Unset, it costs one dict lookup.
"""
import datetime as dt
import json
import logging
import os
import threading
import time
import traceback

import eventlet
from kombu import Queue
from nameko.events import BROADCAST, EventHandler, EventHandlerConfigurationError
from nameko.extensions import ProviderCollector, SharedExtension

from crm_common import telemetry
from crm_common.amqp import connect

log = logging.getLogger(__name__)

ATTEMPTS = "x-crm-attempts"
ERROR_TYPE = "x-crm-error-type"
ERROR_MESSAGE = "x-crm-error-message"
ERROR_TRACEBACK = "x-crm-error-traceback"
SERVICE = "x-crm-service"
METHOD = "x-crm-method"
ORIGIN_QUEUE = "x-crm-queue"
PARKED_AT = "x-crm-parked-at"
PARKING_HEADERS = (ERROR_TYPE, ERROR_MESSAGE, ERROR_TRACEBACK, SERVICE, METHOD, ORIGIN_QUEUE,
                   PARKED_AT)
# Headers the broker adds when it dead-letters a message (from a retry queue).
BROKER_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")

PARKED_SUFFIX = ".parked"
MAX_HEADER_TEXT = 2000


def parked_queue_name(handler_queue_name):
    return handler_queue_name + PARKED_SUFFIX


def retry_queue_name(handler_queue_name, delay_ms):
    return "%s.retry.%dms" % (handler_queue_name, delay_ms)


def parked_queue(handler_queue_name):
    return Queue(parked_queue_name(handler_queue_name), durable=True, auto_delete=False,
                 no_declare=False)


def retry_queue(handler_queue_name, delay_ms):
    """A queue that holds each message `delay_ms` then dead-letters it, through
    the default exchange, back to the handler's queue."""
    return Queue(retry_queue_name(handler_queue_name, delay_ms), durable=True, auto_delete=False,
                 queue_arguments={"x-message-ttl": int(delay_ms),
                                  "x-dead-letter-exchange": "",
                                  "x-dead-letter-routing-key": handler_queue_name})


def is_broker_header(name):
    return any(name == h or name.startswith(h) for h in BROKER_DEATH_HEADERS)


def clean_headers(headers, drop=()):
    """`headers` without the broker's dead-letter bookkeeping (and `drop`)."""
    return {k: v for k, v in (headers or {}).items() if not is_broker_header(k) and k not in drop}


def attempts_of(headers):
    try:
        return max(int((headers or {}).get(ATTEMPTS, 0)), 0)
    except (TypeError, ValueError):
        return 0


_fault_hits = 0                 # matches of the fault point so far (crash_point)


def crash_point(name, queue_name, message):
    """A fault point, for the fault suite only: `os._exit` here when the
    environment asks for it, once per marker file.

    `CRM_FAULT_CRASH` = `<name>` or `<name>:<part of the handler queue's name>`
    (e.g. `reliable_events.before_ack:--analytics.`), `CRM_FAULT_MARKER` = a
    file path (required: without it nothing happens), optional
    `CRM_FAULT_CRASH_AFTER` = crash on the n-th match (default 1). The first
    process to reach the point creates the marker (with the queue and the
    message's `event_id`) and exits; the marker keeps every later process,
    the restarted one included, from crashing again.
    """
    wanted = os.environ.get("CRM_FAULT_CRASH")
    marker = os.environ.get("CRM_FAULT_MARKER")
    if not wanted or not marker:
        return
    point, _, part = wanted.partition(":")
    if point != name or part not in queue_name or os.path.exists(marker):
        return
    global _fault_hits
    _fault_hits += 1
    if _fault_hits < int(os.environ.get("CRM_FAULT_CRASH_AFTER") or 1):
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    try:
        event_id = (message.payload or {}).get("event_id")
    except Exception:
        event_id = None
    os.write(fd, json.dumps({"point": name, "queue": queue_name, "event_id": event_id,
                             "pid": os.getpid()}).encode())
    os.fsync(fd)
    os.close(fd)
    log.error("fault point %s reached in %s: exiting (CRM_FAULT_CRASH)", name, queue_name)
    os._exit(70)


def _text(value):
    value = str(value)
    return value if len(value) <= MAX_HEADER_TEXT else value[:MAX_HEADER_TEXT - 3] + "..."


class ConfirmedPublisher:
    """One broker connection in confirm mode, used by one greenthread at a time.

    `publish` routes a raw message through the default exchange to a queue,
    `mandatory`: it returns only once the broker has confirmed it, and raises
    if the queue does not exist, the broker nacks it, or the broker is away
    (after one reconnect). `declare` is run on every new connection.
    """

    def __init__(self, amqp_uri, declare=lambda channel: None, connect_timeout=5.0,
                 confirm_timeout=10.0):
        self.amqp_uri = amqp_uri
        self.declare = declare
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self._lock = threading.Lock()
        self._conn = None
        self._producer = None

    def _ensure(self):
        if self._producer is None:
            conn = connect(self.amqp_uri, self.connect_timeout,
                           transport_options={"confirm_publish": True})
            try:
                producer = conn.Producer()
                self.declare(producer.channel)
            except Exception:
                conn.release()
                raise
            self._conn, self._producer = conn, producer
        return self._producer

    def _drop(self):
        conn, self._conn, self._producer = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # already broken
                log.debug("releasing a broken publisher connection", exc_info=True)

    def connect(self):
        with self._lock:
            self._ensure()

    def publish(self, queue_name, body, headers, content_type=None, content_encoding=None,
                properties=None):
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._ensure().publish(
                        body, exchange="", routing_key=queue_name, headers=headers,
                        content_type=content_type, content_encoding=content_encoding,
                        delivery_mode=2, mandatory=True, retry=False,
                        confirm_timeout=self.confirm_timeout, **(properties or {}))
                    return
                except Exception:
                    # A new connection declares the queues again: a missing
                    # queue (unroutable, returned) gets a second chance too.
                    self._drop()
                    if attempt == 2:
                        raise

    def close(self):
        with self._lock:
            self._drop()


class RetryPublisher(SharedExtension, ProviderCollector):
    """The container's connection for retries and parking (one per container),
    declaring the retry and parking queues of every reliable handler."""

    def __init__(self):
        super().__init__()
        self._publisher = None

    def setup(self):
        self._publisher = ConfirmedPublisher(self.container.config["AMQP_URI"], self._declare)

    def _declare(self, channel):
        for provider in list(self._providers):
            for queue in provider.side_queues():
                queue(channel).declare()

    def start(self):
        # Declared now so the parking queue exists from the start; if the
        # broker is not reachable the first retry declares them.
        try:
            self._publisher.connect()
        except Exception as exc:
            log.warning("could not declare the retry/parking queues yet: %s", exc)

    def publish(self, *args, **kwargs):
        self._publisher.publish(*args, **kwargs)

    def stop(self):
        self.wait_for_providers()
        if self._publisher is not None:
            self._publisher.close()

    def kill(self):
        if self._publisher is not None:
            self._publisher.close()


class ReliableEventHandler(EventHandler):
    """An `EventHandler` with delayed retries and a parking queue (see module doc)."""

    retry_publisher = RetryPublisher()

    def __init__(self, source_service, event_type, max_attempts=5, retry_delay=1.0,
                 backoff=2.0, max_delay=300.0, park_on=(), pause_on_publish_error=1.0,
                 **kwargs):
        if kwargs.get("handler_type") == BROADCAST:
            raise EventHandlerConfigurationError(
                "reliable_event_handler supports SERVICE_POOL and SINGLETON handlers only")
        if kwargs.pop("requeue_on_error", False):
            raise EventHandlerConfigurationError(
                "reliable_event_handler retries by itself: drop requeue_on_error")
        if kwargs.get("reliable_delivery") is False:
            raise EventHandlerConfigurationError("reliable_event_handler needs reliable_delivery")
        if int(max_attempts) < 1:
            raise EventHandlerConfigurationError("max_attempts must be at least 1")
        self.max_attempts = int(max_attempts)
        self.retry_delay = retry_delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.park_on = tuple(park_on)
        self.pause_on_publish_error = pause_on_publish_error
        # Extension.__new__ keeps every argument, so `bind` clones this one.
        super().__init__(source_service, event_type, **kwargs)

    def delay_ms(self, attempt):
        """The wait before retry number `attempt` (1: after the first failure)."""
        if isinstance(self.retry_delay, (list, tuple)):
            seconds = self.retry_delay[min(attempt, len(self.retry_delay)) - 1]
        else:
            seconds = min(self.retry_delay * self.backoff ** (attempt - 1), self.max_delay)
        return max(int(round(seconds * 1000)), 1)

    def side_queues(self):
        """The retry queues (one per distinct delay) and the parking queue."""
        name = self.queue.name
        delays = sorted({self.delay_ms(n) for n in range(1, self.max_attempts)})
        return [retry_queue(name, ms) for ms in delays] + [parked_queue(name)]

    def setup(self):
        super().setup()
        self.retry_publisher.register_provider(self)

    def stop(self):
        super().stop()
        self.retry_publisher.unregister_provider(self)

    def unpack_message_headers(self, message):
        # Keep our and the broker's bookkeeping out of the worker's context
        # data (it would be forwarded on every call the handler makes).
        headers = super().unpack_message_headers(message)
        return {k: v for k, v in headers.items()
                if not is_broker_header(k) and k != ATTEMPTS and k not in PARKING_HEADERS}

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            crash_point("reliable_events.before_ack", self.queue.name, message)
            self.queue_consumer.ack_message(message)
            return
        try:
            self._divert(message, exc_info)
        except Exception:
            log.exception("could not hand a failed %s.%s event on to retry/parking; requeueing it",
                          self.source_service, self.event_type)
            eventlet.sleep(self.pause_on_publish_error)
            self.queue_consumer.requeue_message(message)
        else:
            self.queue_consumer.ack_message(message)

    def _divert(self, message, exc_info):
        exc_type, exc, tb = exc_info
        attempts = attempts_of(message.headers) + 1
        headers = clean_headers(message.headers, drop=PARKING_HEADERS)
        headers[ATTEMPTS] = attempts
        properties = {k: message.properties[k] for k in ("correlation_id", "message_id", "priority")
                      if message.properties.get(k) is not None}
        if attempts >= self.max_attempts or isinstance(exc, self.park_on):
            headers.update({
                ERROR_TYPE: exc_type.__name__,
                ERROR_MESSAGE: _text(exc),
                ERROR_TRACEBACK: _text("".join(traceback.format_exception(exc_type, exc, tb))[
                    -MAX_HEADER_TEXT:]),
                SERVICE: self.container.service_name,
                METHOD: self.method_name,
                ORIGIN_QUEUE: self.queue.name,
                PARKED_AT: dt.datetime.now(dt.timezone.utc).isoformat(),
            })
            target = parked_queue_name(self.queue.name)
            telemetry.EVENTS_PARKED.labels(self.container.service_name, self.method_name).inc()
            log.error("%s.%s failed %d time(s) (%s: %s): parked in %s", self.container.service_name,
                      self.method_name, attempts, exc_type.__name__, exc, target)
        else:
            delay = self.delay_ms(attempts)
            target = retry_queue_name(self.queue.name, delay)
            telemetry.EVENTS_RETRIED.labels(self.container.service_name, self.method_name).inc()
            log.warning("%s.%s failed (attempt %d of %d, %s: %s): retrying in %.1f s",
                        self.container.service_name, self.method_name, attempts,
                        self.max_attempts, exc_type.__name__, exc, delay / 1000.0)
        started = time.monotonic()
        self.retry_publisher.publish(target, message.body, headers,
                                     content_type=message.content_type,
                                     content_encoding=message.content_encoding,
                                     properties=properties)
        log.debug("diverted to %s in %.3f s", target, time.monotonic() - started)


reliable_event_handler = ReliableEventHandler.decorator
