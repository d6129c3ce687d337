"""What every service tells about its work: a JSON log line per entrypoint run
(RPC, event, timer) and Prometheus metrics, served over HTTP.

`Telemetry()` is declared once in each service class. For every worker it
- binds the worker's fields for its log lines (crm_common.logs): the
  correlation id, nameko's call id, the entrypoint;
- writes one line when the worker ends: what ran, its outcome (`ok`,
  `expected_error`: a business error the entrypoint declares, `error`), and
  how long it took. Timer runs and health pings that went well are `debug`;
- counts and times it: `crm_entrypoint_calls_total` and
  `crm_entrypoint_duration_seconds`, by service, entrypoint and kind.

The correlation id: the gateway names the HTTP request's id
(`correlation_id` in the call's context, beside nameko's call-id stack
`gateway.http.<request id>`); nameko forwards the context on every RPC a
worker makes, and the outbox writes it in each event's headers, so an event
handler gets it too. A unit of work nobody asked for (a timer run, an event
published without one) starts its own: the root of its call-id stack.

The process's metrics are served at `http://<host>:<METRICS_PORT>/metrics`
(config `METRICS_PORT`, from CRM_METRICS_PORT; unset or 0: not served), by a
green thread of its own, so a scrape is answered while every worker is busy.
Besides the counters above: the outbox's backlog and the age of its oldest
row (read from the database at scrape time), events published by the relay,
event retries and parkings, and what a service adds with `add_source` (the
campaigns service: its last Meta sync), plus prometheus-client's process
metrics (CPU, memory, open files).
"""
import logging
import threading
import time

import eventlet
import eventlet.wsgi
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.rpc import Rpc
from nameko.timer import Timer
from prometheus_client import REGISTRY, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily

from crm_common import logs

log = logging.getLogger("crm.worker")

CONTEXT_KEY = logs.CORRELATION_CONTEXT_KEY
GATEWAY_CALL_PREFIX = "gateway.http."
QUIET_WHEN_OK = frozenset({"ping"})          # health checks: every few seconds
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)

ENTRYPOINT_CALLS = Counter(
    "crm_entrypoint_calls", "Entrypoint runs (RPC, event handler, timer), by outcome.",
    ["service", "entrypoint", "kind", "outcome"])
ENTRYPOINT_SECONDS = Histogram(
    "crm_entrypoint_duration_seconds", "How long entrypoint runs took.",
    ["service", "entrypoint", "kind"], buckets=LATENCY_BUCKETS)
EVENTS_RETRIED = Counter(
    "crm_events_retried", "Events whose handler failed and that were put back for a retry.",
    ["service", "entrypoint"])
EVENTS_PARKED = Counter(
    "crm_events_parked", "Events put in the parking queue after their last failed attempt.",
    ["service", "entrypoint"])
OUTBOX_PUBLISHED = Counter(
    "crm_outbox_published", "Events the outbox relay published (broker-confirmed).", ["service"])
OUTBOX_FAILURES = Counter(
    "crm_outbox_publish_failures", "Outbox batches that could not be published (retried).",
    ["service"])


def correlation_id(context_data, call_id_stack):
    """The correlation id of a unit of work: the one it was given, else the
    request id of a gateway call, else the root of its call-id stack."""
    given = context_data.get(CONTEXT_KEY)
    if given:
        return given
    root = call_id_stack[0] if call_id_stack else None
    if root and root.startswith(GATEWAY_CALL_PREFIX):
        return root[len(GATEWAY_CALL_PREFIX):]
    return root


def worker_correlation_id(worker_ctx):
    return correlation_id(worker_ctx.data, worker_ctx.call_id_stack)


def entrypoint_kind(entrypoint):
    if isinstance(entrypoint, Rpc):
        return "rpc"
    if isinstance(entrypoint, EventHandler):
        return "event"
    if isinstance(entrypoint, Timer):
        return "timer"
    return type(entrypoint).__name__.lower()


def outcome_of(entrypoint, exc_info):
    if exc_info is None:
        return "ok"
    expected = getattr(entrypoint, "expected_exceptions", ()) or ()
    return "expected_error" if isinstance(exc_info[1], expected) else "error"


# -- values read at scrape time ---------------------------------------------------
class ScrapeSources:
    """Gauges read when Prometheus asks (from a service's database): one
    collector for the process, fed by the providers that `add_source`."""

    def __init__(self):
        self._sources = {}
        self._lock = threading.Lock()

    def add(self, key, collect):
        """`collect()` returns metric families; it may raise (then it gives none)."""
        with self._lock:
            self._sources[key] = collect

    def remove(self, key):
        with self._lock:
            self._sources.pop(key, None)

    def describe(self):
        return []       # names vary with the sources: nothing to check at registration

    def collect(self):
        with self._lock:
            sources = list(self._sources.items())
        for key, source in sources:
            try:
                yield from source()
            except Exception as exc:
                log.warning("metrics of %s not read: %s", key, exc)


SOURCES = ScrapeSources()
REGISTRY.register(SOURCES)


def add_source(key, collect):
    SOURCES.add(key, collect)


def remove_source(key):
    SOURCES.remove(key)


def gauge(name, documentation, labels, samples):
    """A GaugeMetricFamily of `samples`: [(label values, value)]."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


# -- the process's HTTP endpoint ----------------------------------------------------
class MetricsServer(SharedExtension):
    """Serves the process's registry on METRICS_PORT, in a green thread that
    does not count against the container's workers."""

    def __init__(self):
        self.sock = None
        self.thread = None

    def setup(self):
        self.port = int(self.container.config.get("METRICS_PORT") or 0)
        self.host = self.container.config.get("METRICS_HOST") or "0.0.0.0"

    def start(self):
        if not self.port or self.sock is not None:
            return
        try:
            self.sock = eventlet.listen((self.host, self.port))
        except OSError as exc:
            # The service still works; only its metrics are missing.
            log.error("metrics not served: cannot listen on %s:%d (%s)", self.host, self.port, exc)
            return
        app = make_wsgi_app(REGISTRY)
        self.thread = eventlet.spawn(eventlet.wsgi.server, self.sock, app, log_output=False,
                                     socket_timeout=30)
        log.info("metrics at http://%s:%d/metrics", self.host, self.port)

    def stop(self):
        if self.thread is not None:
            self.thread.kill()
            self.thread = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def kill(self):
        self.stop()


class Telemetry(DependencyProvider):
    """Declared in each service class: `telemetry = Telemetry()`."""

    server = MetricsServer()

    def __init__(self):
        self._started = {}

    def worker_setup(self, worker_ctx):
        entrypoint = worker_ctx.entrypoint
        cid = worker_correlation_id(worker_ctx)
        # forwarded on the worker's own calls (nameko sends the context data)
        worker_ctx.data[CONTEXT_KEY] = cid
        fields = {"service": worker_ctx.service_name, "correlation_id": cid,
                  "call_id": worker_ctx.call_id, "kind": entrypoint_kind(entrypoint),
                  "entrypoint": entrypoint.method_name}
        if isinstance(entrypoint, EventHandler):
            fields["event_type"] = "%s.%s" % (entrypoint.source_service, entrypoint.event_type)
            body = worker_ctx.args[0] if worker_ctx.args else None
            if isinstance(body, dict):
                fields["event_id"] = body.get("event_id")
        logs.bind(**fields)
        self._started[worker_ctx] = (time.monotonic(), fields)

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started, fields = self._started.pop(worker_ctx, (None, None))
        if started is None:
            return
        elapsed = time.monotonic() - started
        entrypoint = worker_ctx.entrypoint
        outcome = outcome_of(entrypoint, exc_info)
        kind, name = fields["kind"], entrypoint.method_name
        ENTRYPOINT_CALLS.labels(worker_ctx.service_name, name, kind, outcome).inc()
        ENTRYPOINT_SECONDS.labels(worker_ctx.service_name, name, kind).observe(elapsed)
        if outcome == "error":
            level = logging.ERROR
        elif outcome == "ok" and (kind == "timer" or name in QUIET_WHEN_OK):
            level = logging.DEBUG
        else:
            level = logging.INFO
        if log.isEnabledFor(level):
            error = None if exc_info is None else "%s: %s" % (exc_info[0].__name__, exc_info[1])
            log.log(level, "%s %s.%s %s", kind, worker_ctx.service_name, name, outcome,
                    extra={"outcome": outcome, "duration_ms": round(elapsed * 1000, 1),
                           "error": error})

    def worker_teardown(self, worker_ctx):
        self._started.pop(worker_ctx, None)
        logs.unbind()
