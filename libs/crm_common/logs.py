"""One JSON object per log line, for every process of the stack.

A line carries the fields of what is being done when it is written: the
gateway binds a request's (`request_id`, `correlation_id`) for the request's
thread, and crm_common.telemetry binds a worker's (`correlation_id`,
`call_id`, `entrypoint`) for the worker's green thread, so that any line a
handler or library writes on the way says which request it belongs to.

No secret reaches a line: the values of the secret settings, bearer tokens,
`access_token`/`appsecret_proof` query parameters and URL passwords are
replaced by `[redacted]`, in the message and in tracebacks.
"""
import contextlib
import json
import logging
import os
import re
import threading
import time

# The key of the correlation id in a nameko call's or event's context
# (headers `nameko.correlation_id`): see crm_common.telemetry.
CORRELATION_CONTEXT_KEY = "correlation_id"

# Fields a line may carry, in this order, from the record or from the context.
FIELDS = ("service", "correlation_id", "request_id", "call_id", "kind", "entrypoint",
          "event_type", "event_id", "method", "route", "status", "outcome", "error",
          "duration_ms")

# Settings whose values never appear in a log line.
SECRET_SETTINGS = ("CRM_API_KEY", "META_ACCESS_TOKEN", "META_APP_SECRET",
                   "META_APP_SECRET_PREVIOUS", "META_VERIFY_TOKEN")
REDACTED = "[redacted]"
SECRET_PATTERNS = (
    # access_token=..., appsecret_proof=..., key=... in a URL's query
    (re.compile(r"(?i)\b(access_token|appsecret_proof|client_secret|key)=[^&\s\"'#]+"),
     r"\1=" + REDACTED),
    # Authorization: Bearer <token>
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]+@"), r"\1:" + REDACTED + "@"),
)

# Threads are green threads in the services (nameko monkey-patches `threading`
# before this module is imported), real ones in the gateway: either way, one
# context per unit of work.
_context = threading.local()


def current():
    """The fields bound for the running thread (a dict; empty when none)."""
    return getattr(_context, "fields", None) or {}


def bind(**fields):
    """Bind `fields` for the running thread, replacing what was bound."""
    _context.fields = {k: v for k, v in fields.items() if v is not None}


def unbind():
    _context.fields = None


@contextlib.contextmanager
def bound(**fields):
    previous = getattr(_context, "fields", None)
    bind(**fields)
    try:
        yield
    finally:
        _context.fields = previous


def secret_values(environ=None):
    environ = os.environ if environ is None else environ
    # short values (a test's "x") would redact ordinary words
    return sorted({environ[name] for name in SECRET_SETTINGS if len(environ.get(name) or "") >= 6},
                  key=len, reverse=True)


def redact(text, secrets=()):
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, *args, secrets=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.secrets = secret_values() if secrets is None else list(secrets)

    def format(self, record):
        expected = record.name == "nameko.containers" and str(record.msg).startswith("(expected)")
        if expected:
            # A business error (404/409/422) the service declared: a fact, not
            # a fault; nameko logs it as a warning with a traceback.
            record.levelname, record.exc_info, record.exc_text = "INFO", None, None
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + ".%03dZ" % record.msecs,
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage(), self.secrets),
        }
        context = current()
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = context.get(name)
            if value is not None:
                entry[name] = redact(value, self.secrets) if name == "error" else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info), self.secrets)
        return json.dumps(entry, default=str)


def configure(level="INFO"):
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
