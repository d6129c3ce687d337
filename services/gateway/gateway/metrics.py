"""The gateway's Prometheus metrics, served at `GET /metrics`.

- `crm_http_requests_total{method, route, status}` and
  `crm_http_request_duration_seconds{method, route}`: every answered request,
  by route template (`/api/leads/{id}`, so that ids do not make new series;
  `unmatched` for paths no route serves);
- `crm_rpc_client_calls_total{service, method, outcome}` and
  `crm_rpc_client_duration_seconds{service, method}`: the calls the gateway
  makes, outcome `ok`, `remote_error` (the service answered with an error),
  `timeout` (no answer in time) or `unavailable` (no service or broker);
  `crm_rpc_timeouts_total{service, method}` counts the timeouts alone.

gunicorn runs several worker processes: each writes its samples to files in
PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py makes one per gateway run when
it is not set) and a scrape, answered by any worker, sums them all. Without
it (tests, one process) the process's own registry is served.
"""
import os

from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter,
                               Histogram, generate_latest, multiprocess)

LATENCY_BUCKETS = (.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
UNMATCHED = "unmatched"

HTTP_REQUESTS = Counter("crm_http_requests", "HTTP requests answered, by route and status.",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("crm_http_request_duration_seconds",
                         "How long HTTP requests took to answer (streams: to their first byte).",
                         ["method", "route"], buckets=LATENCY_BUCKETS)
RPC_CALLS = Counter("crm_rpc_client_calls", "RPC calls from the gateway, by outcome.",
                    ["service", "method", "outcome"])
RPC_SECONDS = Histogram("crm_rpc_client_duration_seconds", "How long the gateway's RPC calls took.",
                        ["service", "method"], buckets=LATENCY_BUCKETS)
RPC_TIMEOUTS = Counter("crm_rpc_timeouts", "RPC calls that got no answer in time.",
                       ["service", "method"])


# A client may send any token as the method: others share one label, so
# that nobody can make series without end.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method, route, status, seconds):
    method = method if method in METHODS else "other"
    HTTP_REQUESTS.labels(method, route or UNMATCHED, str(status)).inc()
    HTTP_SECONDS.labels(method, route or UNMATCHED).observe(seconds)


def observe_call(service, method, outcome, seconds):
    RPC_CALLS.labels(service, method, outcome).inc()
    RPC_SECONDS.labels(service, method).observe(seconds)
    if outcome == "timeout":
        RPC_TIMEOUTS.labels(service, method).inc()


def exposition():
    """(content type, body) of every metric of the gateway."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return CONTENT_TYPE_LATEST, generate_latest(registry)


class MetricsEndpoint:
    """`GET /metrics`, for Prometheus (no API key: like the services' metrics
    ports, keep it off the public ingress)."""

    def on_get(self, req, resp):
        resp.content_type, resp.data = exposition()
