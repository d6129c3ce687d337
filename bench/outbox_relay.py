#!/usr/bin/env python3
"""Outbox relay benchmark: rows per second that `OutboxRelay.drain()`
publishes (with publisher confirms) and deletes, from a full outbox.

Makes a scratch database `crm_benchoutbox_<run>` holding only an `outbox`
table and a scratch vhost of the same name (rabbitmqctl; else AMQP_URI, with
an exchange named for the scratch service), with one durable queue bound to
the service's event exchange, as an event handler's queue is (so each message
is routed and persisted, as in the stack). Each repeat inserts `--rows`
lead_updated-sized rows, then times one `drain()` and checks that every row
left the table and reached the queue. Runs under eventlet, as services do.

    flock /work/bench.lock .venv/bin/python bench/outbox_relay.py \
        [--rows 5000] [--repeat 3] [--batch-size N] [--impl path/to/outbox.py]

`--impl` loads OutboxRelay from another copy of outbox.py (e.g. an older one
from `git show`) to compare. Everything it made is dropped on the way out.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "libs"))

import sqlalchemy as sa  # noqa: E402
from kombu import Connection, Exchange, Queue  # noqa: E402

from crm_common.config import Settings, with_database  # noqa: E402
from crm_common.db import make_psycopg_cooperative  # noqa: E402
from crm_common.events import envelope, events_exchange_name  # noqa: E402
from crm_common.migrations import ensure_database, server_connection  # noqa: E402
from crm_common.outbox import OUTBOX, outbox_row  # noqa: E402
from crm_common.testing import delete_vhost, vhost_uri  # noqa: E402


def load_relay_class(path):
    if not path:
        from crm_common.outbox import OutboxRelay
        return OutboxRelay
    spec = importlib.util.spec_from_file_location("outbox_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OutboxRelay


def lead_updated(n):
    """An event the size of the leads service's lead_updated (about 700 bytes)."""
    lead = {"id": str(uuid.uuid4()), "name": "Lead %d" % n, "email": "lead%d@example.com" % n,
            "phone": "+1 555 %07d" % n, "company": "Company %d" % (n % 97),
            "jobTitle": "Buyer", "status": "contacted", "source": "website", "score": n % 100,
            "value": 1250.0, "ownerId": "user-1", "createdAt": "2024-05-01T10:00:00.000Z",
            "updatedAt": "2024-05-02T10:00:00.000Z", "lastInteraction": None,
            "lastInteractionAt": None, "closedAt": None, "metaLeadAd": None}
    body = envelope({"lead": lead, "changes": {"status": {"from": "new", "to": "contacted"}}})
    return outbox_row("lead_updated", body, {"nameko.call_id_stack": ["gateway.http.%d" % n]})


def fill(engine, rows):
    with engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX), [lead_updated(n) for n in range(rows)])


def outbox_count(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, help="default: the relay's own")
    parser.add_argument("--impl", help="an outbox.py to take OutboxRelay from")
    args = parser.parse_args()

    relay_class = load_relay_class(args.impl)
    make_psycopg_cooperative()
    settings = Settings.from_env()
    run = "crm_benchoutbox_" + secrets.token_hex(3)
    service = run[len("crm_"):]
    amqp_uri = vhost_uri(run)
    ensure_database(settings.database_url, run)
    engine = sa.create_engine(with_database(settings.database_url, run))
    broker = Connection(amqp_uri)
    exchange = Exchange(events_exchange_name(service), type="topic", durable=True)
    queue = Queue("evt-%s-all--bench.handle" % service, exchange=exchange, routing_key="#",
                  durable=True)
    relay = None
    try:
        OUTBOX.metadata.create_all(engine)
        queue(broker.default_channel).declare()
        options = {"batch_size": args.batch_size} if args.batch_size else {}
        relay = relay_class(engine, amqp_uri, service, **options)
        rates = []
        for attempt in range(1, args.repeat + 1):
            fill(engine, args.rows)
            queue(broker.default_channel).purge()
            started = time.perf_counter()
            sent = relay.drain()
            elapsed = time.perf_counter() - started
            queued = queue(broker.default_channel).queue_declare(passive=True).message_count
            left = outbox_count(engine)
            if sent != args.rows or left or queued != args.rows:
                print("run %d: sent %d, left %d, queued %d of %d rows"
                      % (attempt, sent, left, queued, args.rows), file=sys.stderr)
                return 1
            rates.append(args.rows / elapsed)
            print("run %d: %d rows in %.2f s = %.0f rows/s" % (attempt, args.rows, elapsed,
                                                               rates[-1]))
        print("%s, batch %d: median %.0f rows/s (best %.0f)"
              % (args.impl or "crm_common/outbox.py", relay.batch_size,
                 statistics.median(rates), max(rates)))
        return 0
    finally:
        if relay is not None:
            relay.close()
        try:
            channel = broker.default_channel
            queue(channel).delete()
            exchange(channel).delete()
        finally:
            broker.release()
            engine.dispose()
            delete_vhost(run)
            with server_connection(settings.database_url) as conn:
                conn.execute(sa.text('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % run))


if __name__ == "__main__":
    sys.exit(main())
