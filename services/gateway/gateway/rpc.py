"""A persistent, thread-safe client for nameko RPC, for the gateway's threads.

One process holds one reply queue and one consumer thread, however many
requests it serves (a nameko ClusterRpcProxy per request would declare a reply
queue per request). Calls are published with publisher confirms and the
`mandatory` flag, so a service with no queue at all fails at once; a request
carries an expiration equal to its timeout, so a request nobody took in time
is dropped by the broker instead of being run after the caller gave up.
Replies that arrive after their caller gave up are discarded. Connection
errors rebuild the connections; calls made meanwhile fail fast with
`ServiceUnavailable`.

Publishing waits for the broker's confirm, a round trip during which the
connection can do nothing else; so a process keeps a few publishing
connections (`publishers`, 4), each used by one thread at a time, and a
thread waits for a free one only when all are busy.
"""
import logging
import queue
import socket
import threading
import time
import uuid

from amqp.exceptions import ConnectionError as AmqpConnectionError, MessageNacked
from kombu import Exchange, Queue
from kombu.exceptions import ChannelError, OperationalError

from crm_common.amqp import connect
from gateway import metrics

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"
# py-amqp's own ConnectionError family (ConnectionForced when the broker closes
# the connection, RecoverableConnectionError "channel disconnected" on a
# producer whose connection died) is not the builtin one: without it a broker
# drop was a 500 on every later call, the dead publisher never replaced.
CONNECTION_ERRORS = (OSError, ConnectionError, AmqpConnectionError, OperationalError, ChannelError,
                     socket.timeout, EOFError)


class ServiceUnavailable(Exception):
    """The service (or the broker) did not answer in time: a 503."""

    def __init__(self, service, reason, timed_out=False):
        super().__init__("%s: %s" % (service, reason))
        self.service = service
        self.reason = reason
        self.timed_out = timed_out


class RemoteError(Exception):
    """The service answered with an error (nameko's serialized exception)."""

    def __init__(self, error):
        super().__init__("%s: %s" % (error.get("exc_path"), error.get("value")))
        self.exc_path = error.get("exc_path") or ""
        self.exc_type = error.get("exc_type") or ""
        args = error.get("exc_args") or []
        self.details = args[0] if args and isinstance(args[0], dict) else {}
        self.value = error.get("value")


class _PendingCall:
    __slots__ = ("event", "body")

    def __init__(self):
        self.event = threading.Event()
        self.body = None


class RpcClient:
    def __init__(self, amqp_uri, timeout=5.0, name="gateway", connect_timeout=3.0, heartbeat=10,
                 publishers=4):
        self.amqp_uri = amqp_uri
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.exchange = Exchange(RPC_EXCHANGE, type="topic", durable=True)
        self.reply_key = uuid.uuid4().hex
        self.reply_queue = Queue("rpc.reply-%s-%s" % (name, self.reply_key), exchange=self.exchange,
                                 routing_key=self.reply_key, exclusive=True, auto_delete=True)
        self._pending = {}
        self._pending_lock = threading.Lock()
        self.publishers = publishers
        self._idle_publishers = queue.LifoQueue()      # (connection, producer), free
        self._publisher_slots = threading.BoundedSemaphore(publishers)
        self._listening = threading.Event()
        self._closed = threading.Event()
        self._thread = None
        self._start_lock = threading.Lock()
        self._pid = None
        self.reply_connections = 0       # how often the reply consumer (re)connected

    # -- the reply consumer -------------------------------------------------
    def start(self):
        """Start the reply consumer (once per process: safe to call often,
        and after a fork, where the parent's thread does not exist)."""
        import os

        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            # a parent's connections are not this process's to use
            self._idle_publishers = queue.LifoQueue()
            self._publisher_slots = threading.BoundedSemaphore(self.publishers)
            self._listening.clear()
            self._closed.clear()
            self._thread = threading.Thread(target=self._consume_forever, name="rpc-replies",
                                            daemon=True)
            self._thread.start()

    def _consume_forever(self):
        backoff = 0.2
        while not self._closed.is_set():
            conn = None
            try:
                conn = connect(self.amqp_uri, self.connect_timeout, heartbeat=self.heartbeat)
                with conn.Consumer(queues=[self.reply_queue], callbacks=[self._on_reply],
                                   accept=["json"], no_ack=True):
                    self._listening.set()
                    self.reply_connections += 1
                    backoff = 0.2
                    log.info("rpc client listening on %s", self.reply_queue.name)
                    while not self._closed.is_set():
                        try:
                            conn.drain_events(timeout=1.0)
                        except socket.timeout:
                            pass
                        # Every pass, not only when idle: under steady replies
                        # drain_events never times out, and a client that sends
                        # no heartbeats is dropped by the broker (rate-limited
                        # inside kombu, so this is cheap).
                        conn.heartbeat_check()
            except CONNECTION_ERRORS as exc:
                if not self._closed.is_set():
                    log.warning("rpc client: broker connection lost (%s); reconnecting", exc)
            except Exception:  # never let the reply thread die: calls would hang
                log.exception("rpc client: unexpected error in the reply consumer")
            finally:
                self._listening.clear()
                self._fail_pending()
                if conn is not None:
                    try:
                        conn.release()
                    except Exception:
                        log.debug("releasing a broken connection", exc_info=True)
            if not self._closed.is_set():
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _on_reply(self, body, message):
        correlation_id = message.properties.get("correlation_id")
        with self._pending_lock:
            call = self._pending.pop(correlation_id, None)
        if call is None:
            log.debug("discarding a late reply (%s)", correlation_id)
            return
        call.body = body
        call.event.set()

    def _fail_pending(self):
        """The reply queue is gone with its connection: waiting calls cannot
        be answered, so wake them to fail now rather than at their timeout."""
        with self._pending_lock:
            calls, self._pending = list(self._pending.values()), {}
        for call in calls:
            call.event.set()

    # -- publishing -----------------------------------------------------------
    def _new_publisher(self, budget):
        conn = connect(self.amqp_uri, max(min(self.connect_timeout, budget), 0.05),
                       transport_options={"confirm_publish": True})
        try:
            producer = conn.Producer(exchange=self.exchange)
        except Exception:
            conn.release()
            raise
        return conn, producer

    @staticmethod
    def _discard(publisher):
        if publisher is None:
            return
        try:
            publisher[0].release()
        except Exception:
            log.debug("releasing a broken publisher connection", exc_info=True)

    def _publish(self, service, body, timeout, exchange, routing_key, **properties):
        """Publish with a confirm and the mandatory flag; ServiceUnavailable
        (naming `service`) when no queue takes it or the broker is away."""
        deadline = time.monotonic() + timeout
        slots = self._publisher_slots
        if not slots.acquire(timeout=max(timeout, 0)):
            raise ServiceUnavailable(service, "no publishing connection free within %.1f s"
                                     % timeout)
        idle = self._idle_publishers
        try:
            for attempt in (1, 2):
                try:
                    publisher = idle.get_nowait()
                except queue.Empty:
                    publisher = None
                try:
                    if publisher is None:
                        publisher = self._new_publisher(deadline - time.monotonic())
                    publisher[1].publish(
                        body, exchange=exchange, routing_key=routing_key, mandatory=True,
                        serializer="json", retry=False, **properties)
                    idle.put(publisher)
                    return
                except ChannelError as exc:
                    self._discard(publisher)
                    if "NO_ROUTE" in str(exc):
                        raise ServiceUnavailable(service, "no instance of the service is running")
                    raise ServiceUnavailable(service, "the broker refused the message")
                except MessageNacked:
                    self._discard(publisher)
                    raise ServiceUnavailable(service, "the broker refused the message")
                except CONNECTION_ERRORS as exc:
                    # A stale connection (the broker restarted): the frame never
                    # went out, so one retry on a fresh connection is safe.
                    self._discard(publisher)
                    if attempt == 2 or time.monotonic() >= deadline:
                        raise ServiceUnavailable(service, "the broker is unreachable (%s)" % exc)
        finally:
            slots.release()

    def dispatch(self, source, event_type, payload, consumer="the consumer", timeout=None,
                 context=None):
        """Publish a nameko event `<source>.<event_type>` (persistent, on the
        durable `<source>.events` exchange) and return once the broker has
        confirmed it: it is then in every bound (durable) queue. Raises
        ServiceUnavailable (naming `consumer`) when no queue is bound or the
        broker cannot be reached within `timeout`."""
        timeout = self.timeout if timeout is None else timeout
        exchange = Exchange("%s.events" % source, type="topic", durable=True)
        headers = {"nameko.%s" % k: v for k, v in (context or {}).items()}
        self._publish(consumer, payload, timeout, exchange, event_type, delivery_mode=2,
                      headers=headers, declare=[exchange])

    # -- the call -------------------------------------------------------------
    def call(self, service, method, *args, timeout=None, context=None, **kwargs):
        """`method` of `service`'s answer; RemoteError when it answered with
        an error, ServiceUnavailable when it did not answer in time (counted
        as a timeout in the metrics) or could not be reached."""
        started = time.monotonic()
        outcome = "unavailable"
        try:
            result = self._call(service, method, args, kwargs, timeout, context)
            outcome = "ok"
            return result
        except RemoteError:
            outcome = "remote_error"
            raise
        except ServiceUnavailable as exc:
            if exc.timed_out:
                outcome = "timeout"
            raise
        finally:
            metrics.observe_call(service, method, outcome, time.monotonic() - started)

    def _call(self, service, method, args, kwargs, timeout, context):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self.start()
        if not self._listening.wait(timeout):
            raise ServiceUnavailable(service, "the broker is unreachable")
        correlation_id = uuid.uuid4().hex
        call = _PendingCall()
        with self._pending_lock:
            self._pending[correlation_id] = call
        try:
            headers = {"nameko.%s" % k: v for k, v in (context or {}).items()}
            left = max(deadline - time.monotonic(), 0.001)
            self._publish(service, {"args": args, "kwargs": kwargs}, left, self.exchange,
                          "%s.%s" % (service, method), reply_to=self.reply_key,
                          correlation_id=correlation_id, expiration=left, headers=headers)
            call.event.wait(max(deadline - time.monotonic(), 0))
        finally:
            with self._pending_lock:
                self._pending.pop(correlation_id, None)
        if call.body is None:
            if call.event.is_set():
                raise ServiceUnavailable(service, "the broker connection was lost")
            raise ServiceUnavailable(service, "no answer within %.1f s" % timeout, timed_out=True)
        if call.body.get("error"):
            raise RemoteError(call.body["error"])
        return call.body.get("result")

    def close(self):
        self._closed.set()
        while True:
            try:
                self._discard(self._idle_publishers.get_nowait())
            except queue.Empty:
                break
        if self._thread is not None:
            self._thread.join(timeout=3)
