"""gunicorn settings of the gateway (gthread workers: no eventlet here)."""
import json
import os
import shutil
import signal
import sys
import tempfile

import gunicorn.util

from crm_common import logs
from crm_common.config import Settings
from gateway import generation  # noqa: F401  (made here, so every worker shares it)

settings = Settings.from_env()

bind = "%s:%d" % (os.environ.get("CRM_BIND", "0.0.0.0"), settings.port)
worker_class = "gthread"
workers = int(os.environ.get("CRM_GATEWAY_WORKERS", "2"))
# An open event stream holds a thread for its whole life: each worker gets
# CRM_SSE_MAX_STREAMS threads for them on top of those for ordinary requests.
threads = int(os.environ.get("CRM_GATEWAY_THREADS", "16")) + settings.sse_max_streams
timeout = 60
# On SIGTERM, how long the workers may take to finish the requests in flight (no
# new connection is served meanwhile); then they are killed. The same bound as
# the services' (crm_common.serve); a supervisor's grace must exceed it.
graceful_timeout = max(1, round(float(os.environ.get("CRM_SHUTDOWN_TIMEOUT") or 20)))
# Longer than a client or proxy keeps an idle connection (browsers ~60 s, nginx 75 s
# upstream): otherwise the server may close a connection just as the client
# reuses it, and the client sees "connection closed without response".
keepalive = 75
accesslog = None            # the app logs one JSON line per request
# gunicorn's own lines (workers booting, signals, timeouts) in the same JSON
# shape as every other line of the stack; gunicorn merges this dict shallowly
# into its defaults, so every section is given whole.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "crm_common.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                             "stream": "ext://sys.stderr"}},
    "root": {"level": os.environ.get("CRM_LOG_LEVEL", "INFO"), "handlers": ["console"]},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
                "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True}},
}
preload_app = False
# The longest request line gunicorn takes (its default is 4094): a valid
# query (every text parameter at its documented maxLength, percent-encoded)
# fits; a longer line is a 414, in JSON (write_json_error below).
limit_request_line = 8190
# gunicorn 27's control socket lives at one path per user (~/.gunicorn): two
# gateways on one machine (dev, tests, benchmarks) would fight over it.
control_socket_disable = True


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's own answers to requests it refuses before the app sees them
    (a request line over the limit: 414, malformed HTTP: 400, ...), in the
    contract's JSON error shape instead of gunicorn's HTML page."""
    body = json.dumps({"title": reason,
                       "description": mesg or "The request could not be completed."}).encode()
    head = ("HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (status_int, reason, len(body)))
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


# Workers are forked from the master, which read this file: they inherit it.
gunicorn.util.write_error = write_json_error


# Where the workers write their metrics (on_starting).
METRICS_DIR, OWN_METRICS_DIR = None, False


def prepare_metrics_dir():
    """The directory the workers write their metrics to, summed by whichever
    worker answers GET /metrics (gateway/metrics.py): PROMETHEUS_MULTIPROC_DIR
    when given (its files of an earlier run removed: they would be summed
    in), else one made for this run and removed on exit. Set in the
    environment before any worker imports prometheus_client, which reads it
    at import; workers inherit it."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        return given, False
    made = tempfile.mkdtemp(prefix="crm-gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made, True


def on_starting(server):
    """Once, before any worker: the metrics directory; then migrate the
    gateway database and make sure an API key exists (CRM_API_KEY, or a
    generated one printed here once). In a child process: the master only
    forks and watches workers, and importing SQLAlchemy and alembic here
    would keep ~30 MiB in it for its whole life."""
    global METRICS_DIR, OWN_METRICS_DIR
    METRICS_DIR, OWN_METRICS_DIR = prepare_metrics_dir()
    logs.configure(os.environ.get("CRM_LOG_LEVEL", "INFO"))
    import subprocess

    done = subprocess.run([sys.executable, "-m", "gateway.keys"], cwd=os.path.dirname(__file__))
    if done.returncode != 0:
        raise RuntimeError("the gateway database could not be prepared (exit status %d)"
                           % done.returncode)


def post_fork(server, worker):
    logs.configure(os.environ.get("CRM_LOG_LEVEL", "INFO"))


def post_worker_init(worker):
    """SIGTERM first ends the open event streams: they never end by
    themselves, and would hold the worker for the whole graceful_timeout."""
    from gateway.wsgi import streams

    worker_handler = signal.getsignal(signal.SIGTERM)

    def end_streams_then_exit(sig, frame):
        streams.end_streams()           # never blocks; the main thread holds none of its locks
        worker_handler(sig, frame)

    signal.signal(signal.SIGTERM, end_streams_then_exit)
    signal.siginterrupt(signal.SIGTERM, False)      # as gunicorn set it; signal() resets it


def child_exit(server, worker):
    """In the master, once a worker is gone: its live gauges stop counting
    (its counters and histograms stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, METRICS_DIR)


def on_exit(server):
    if OWN_METRICS_DIR and METRICS_DIR:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)


def worker_exit(server, worker):
    """Release the stream hub's thread and connection. gunicorn calls this in
    the master too, which never loads the app."""
    wsgi = sys.modules.get("gateway.wsgi")
    if wsgi is not None:
        wsgi.streams.close()
