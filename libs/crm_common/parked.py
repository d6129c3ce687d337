"""Operator tools for parked events (see crm_common.reliable_events).

    python -m crm_common.parked list   [--queue Q] [--limit N] [--amqp-uri URI]
    python -m crm_common.parked replay [--queue Q] [--limit N] [--amqp-uri URI]

Q is a parking queue (`<handler queue>.parked`) or a handler queue; without
it, the parking queues of every reliable handler of the stack's services.
`list` reads messages without consuming them (they are taken unacked and given
back when the channel closes). `replay` moves each parked message back to its
handler's queue (attempt count reset, error headers dropped), acking it only
after the broker confirmed the republish; it moves at most the messages that
were parked when it started, so a message that fails again and is parked again
meanwhile is not replayed twice.
"""
import argparse
import json
import os
import sys

from crm_common.amqp import connect
from crm_common.reliable_events import (ATTEMPTS, ERROR_MESSAGE, ERROR_TYPE, METHOD, ORIGIN_QUEUE,
                                        PARKED_AT, PARKED_SUFFIX, PARKING_HEADERS, SERVICE,
                                        ConfirmedPublisher, clean_headers, parked_queue_name)

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672//"


def as_parked_queue(name):
    return name if name.endswith(PARKED_SUFFIX) else parked_queue_name(name)


def origin_queue(parked_name, headers):
    return (headers or {}).get(ORIGIN_QUEUE) or parked_name[:-len(PARKED_SUFFIX)]


def _decode(message):
    body = message.body
    try:
        if "json" in (message.properties.get("content_type") or ""):
            return json.loads(body)
    except ValueError:
        pass
    return body


def _entry(queue, message):
    headers = dict(message.headers or {})
    return {"queue": queue, "handler_queue": origin_queue(queue, headers),
            "attempts": headers.get(ATTEMPTS), "error_type": headers.get(ERROR_TYPE),
            "error_message": headers.get(ERROR_MESSAGE), "service": headers.get(SERVICE),
            "method": headers.get(METHOD), "parked_at": headers.get(PARKED_AT),
            "body": _decode(message), "headers": headers}


def list_parked(amqp_uri, queue, limit=1000, connect_timeout=5.0):
    """The messages of one parking queue (at most `limit`), left in place."""
    queue = as_parked_queue(queue)
    conn = connect(amqp_uri, connect_timeout)
    try:
        channel = conn.channel()
        try:
            # passive: never create a parking queue by looking at it
            _, count, _ = channel.queue_declare(queue, passive=True)
        except Exception:
            return []
        entries = []
        for _ in range(min(count, limit)):
            message = channel.basic_get(queue, no_ack=False)
            if message is None:
                break
            entries.append(_entry(queue, message))
        # Nothing was acked: closing the channel gives every message back, in order.
        channel.close()
        return entries
    finally:
        conn.release()


def replay_parked(amqp_uri, queue, limit=None, connect_timeout=5.0):
    """Move parked messages back to their handler queue; returns how many."""
    queue = as_parked_queue(queue)
    conn = connect(amqp_uri, connect_timeout)
    publisher = ConfirmedPublisher(amqp_uri, connect_timeout=connect_timeout)
    moved = 0
    try:
        channel = conn.channel()
        try:
            _, count, _ = channel.queue_declare(queue, passive=True)
        except Exception:
            return 0
        if limit is not None:
            count = min(count, limit)
        for _ in range(count):
            raw = channel.basic_get(queue, no_ack=False)
            if raw is None:
                break
            headers = dict(raw.headers or {})
            target = origin_queue(queue, headers)
            headers = clean_headers(headers, drop=PARKING_HEADERS + (ATTEMPTS,))
            props = raw.properties
            publisher.publish(target, raw.body, headers, content_type=props.get("content_type"),
                              content_encoding=props.get("content_encoding"))
            channel.basic_ack(raw.delivery_tag)
            moved += 1
        channel.close()
    finally:
        publisher.close()
        conn.release()
    return moved


def stack_parked_queues():
    from crm_common.bootstrap import event_handlers, stack_service_classes
    from crm_common.reliable_events import ReliableEventHandler

    config = {"AMQP_URI": DEFAULT_AMQP_URI}
    return [parked_queue_name(h.queue.name) for cls in stack_service_classes()
            for h in event_handlers(cls, config) if isinstance(h, ReliableEventHandler)]


def main(argv=None):
    parser = argparse.ArgumentParser(description="List or replay parked events.")
    parser.add_argument("command", choices=("list", "replay"))
    parser.add_argument("--queue", action="append",
                        help="a parking or handler queue (default: every reliable handler's)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--amqp-uri", default=os.environ.get("AMQP_URI", DEFAULT_AMQP_URI))
    args = parser.parse_args(argv)
    queues = args.queue or stack_parked_queues()
    for queue in queues:
        if args.command == "list":
            entries = list_parked(args.amqp_uri, queue, args.limit or 1000)
            print("%s: %d parked" % (as_parked_queue(queue), len(entries)))
            for e in entries:
                print(json.dumps({k: e[k] for k in ("attempts", "error_type", "error_message",
                                                     "service", "method", "parked_at", "body")},
                                 default=str))
        else:
            moved = replay_parked(args.amqp_uri, queue, args.limit)
            print("%s: %d replayed to %s" % (as_parked_queue(queue), moved,
                                              as_parked_queue(queue)[:-len(PARKED_SUFFIX)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
