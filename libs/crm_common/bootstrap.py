"""Declare every event handler's queues before any service starts.

RabbitMQ drops an event published to an exchange with no bound queue: an
event published before its subscriber first started would be lost. This
module finds the event-handler entrypoints of service classes (nameko's
`@event_handler` and `@reliable_event_handler`), binds them as nameko does
(so names, flags and arguments are exactly nameko's: a mismatch would make the
service's own declare fail with PRECONDITION_FAILED) and declares each
handler's durable queue, its binding to the source exchange, and, for
reliable handlers, the retry and parking queues.

    python -m crm_common.bootstrap [--amqp-uri URI] [--service leads.service ...]

imports every service of the stack (a missing service package is skipped, an
import error fails) and declares their queues on AMQP_URI. Idempotent.
"""
import argparse
import importlib
import importlib.util
import inspect
import logging
import os
import sys

from nameko.containers import ServiceContainer
from nameko.events import BROADCAST, EventHandler

from crm_common import logs
from crm_common.amqp import connect
from crm_common.reliable_events import ReliableEventHandler

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK_SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672//"


def is_service_class(obj):
    return (inspect.isclass(obj) and isinstance(getattr(obj, "name", None), str)
            and any(getattr(member, "nameko_entrypoints", None)
                    for _, member in inspect.getmembers(obj, inspect.isfunction)))


def service_classes(module):
    """The nameko service classes a module defines (as `nameko run` finds them)."""
    return [obj for _, obj in inspect.getmembers(module, is_service_class)
            if obj.__module__ == module.__name__]


def _ensure_service_paths():
    """Let `import tasks.service` work from a checkout without PYTHONPATH set
    (PYTHONPATH, as bin/stack.py and the image set it, still wins)."""
    for name in STACK_SERVICES:
        path = os.path.join(ROOT, "services", name)
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)


def stack_service_classes(names=STACK_SERVICES):
    """Import `<name>.service` for every service package that exists; an import
    error inside an existing package propagates."""
    _ensure_service_paths()
    classes = []
    for name in names:
        if importlib.util.find_spec(name) is None:
            log.warning("no %s package: skipped", name)
            continue
        classes.extend(service_classes(importlib.import_module("%s.service" % name)))
    return classes


def event_handlers(service_cls, config):
    """The bound, set-up event-handler entrypoints of `service_cls`: their
    `queue` is the one nameko declares. Broadcast handlers are skipped (their
    queue names are per instance)."""
    container = ServiceContainer(service_cls, config)
    handlers = []
    for entrypoint in container.entrypoints:
        if not isinstance(entrypoint, EventHandler) or entrypoint.handler_type is BROADCAST:
            continue
        # EventHandler.setup builds the queue exactly as at start; besides that
        # it only registers with the (never started) container's consumer.
        entrypoint.setup()
        handlers.append(entrypoint)
    return sorted(handlers, key=lambda h: h.queue.name)


def handler_queues(entrypoint):
    """Every queue an event handler needs: its own (bound to the source
    exchange) first, then a reliable handler's retry and parking queues."""
    queues = [entrypoint.queue]
    if isinstance(entrypoint, ReliableEventHandler):
        queues += entrypoint.side_queues()
    return queues


def topology(service_classes_, config):
    queues = {}
    for cls in service_classes_:
        for entrypoint in event_handlers(cls, config):
            for queue in handler_queues(entrypoint):
                queues.setdefault(queue.name, queue)
    return list(queues.values())


def declare(service_classes_, amqp_uri, config=None, connect_timeout=5.0):
    """Declare the queues (and source exchanges and bindings) of the event
    handlers of `service_classes_`; returns the queue names."""
    config = dict(config or {}, AMQP_URI=amqp_uri)
    queues = topology(service_classes_, config)
    conn = connect(amqp_uri, connect_timeout)
    try:
        channel = conn.channel()
        for queue in queues:
            queue(channel).declare()       # exchange, queue, binding: as kombu does for nameko
            log.info("declared %s", queue.name)
        channel.close()
    finally:
        conn.release()
    return [q.name for q in queues]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-uri", default=os.environ.get("AMQP_URI", DEFAULT_AMQP_URI))
    parser.add_argument("--service", action="append", metavar="MODULE",
                        help="a module of service classes (default: every stack service)")
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("CRM_LOG_LEVEL", "INFO"))
    if args.service:
        _ensure_service_paths()
        classes = [c for m in args.service for c in service_classes(importlib.import_module(m))]
    else:
        classes = stack_service_classes()
    names = declare(classes, args.amqp_uri)
    log.info("%d queue(s) declared for %d service(s)", len(names), len(classes),
             extra={"service": "bootstrap"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
