"""The transactional outbox.

A change and the events it raises are written in one transaction: the events
as rows of the service's `outbox` table. After commit, a relay publishes the
rows to the service's nameko event exchange (`<service>.events`, routing key
= event type), waits for the broker's publisher confirm, and only then deletes
them. A crash or a broker outage between commit and confirm leaves the rows in
place, so they are published later: at least once, never lost, and never for a
transaction that rolled back. Consumers de-duplicate on `event_id`.
"""
import logging
import time

import sqlalchemy as sa
from kombu import Exchange
from sqlalchemy.dialects import postgresql as pg

from crm_common.amqp import connect
from crm_common.events import events_exchange_name

log = logging.getLogger(__name__)


def outbox_columns():
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column("headers", pg.JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    ]


OUTBOX = sa.Table("outbox", sa.MetaData(), *outbox_columns())


def outbox_row(event_type, body, headers=None):
    return {"event_id": body["event_id"], "event_type": event_type, "payload": body,
            "headers": headers or {}}


class OutboxRelay:
    """Publishes committed outbox rows, oldest first, then deletes them.

    Several instances of a service may relay from one table: rows are claimed
    with FOR UPDATE SKIP LOCKED, so each batch goes out through one of them.
    """

    def __init__(self, engine, amqp_uri, service_name, batch_size=200, connect_timeout=3):
        self.engine = engine
        self.amqp_uri = amqp_uri
        self.exchange = Exchange(events_exchange_name(service_name), type="topic", durable=True,
                                 auto_delete=False)
        self.batch_size = batch_size
        self.connect_timeout = connect_timeout
        self._connection = None
        self._producer = None

    def _get_producer(self):
        if self._producer is None:
            conn = connect(self.amqp_uri, self.connect_timeout,
                           transport_options={"confirm_publish": True})
            try:
                producer = conn.Producer()
                self.exchange(producer.channel).declare()
            except Exception:
                conn.release()
                raise
            self._connection, self._producer = conn, producer
        return self._producer

    def close(self):
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # the connection is already broken: nothing to release
                log.debug("releasing a broken relay connection", exc_info=True)
        self._connection = self._producer = None

    def publish_pending(self):
        """Publish one batch; returns how many rows went out (0: nothing to do).

        Raises when the broker or the database is unreachable; the rows stay.
        """
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(OUTBOX.c.id, OUTBOX.c.event_type, OUTBOX.c.payload, OUTBOX.c.headers)
                .order_by(OUTBOX.c.id).limit(self.batch_size)
                .with_for_update(skip_locked=True)).all()
            if not rows:
                return 0
            try:
                producer = self._get_producer()
                for row in rows:
                    producer.publish(row.payload, exchange=self.exchange, routing_key=row.event_type,
                                     serializer="json", delivery_mode=2, headers=row.headers,
                                     retry=False)
            except Exception:
                self.close()
                raise
            conn.execute(sa.delete(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows])))
        return len(rows)

    def drain(self):
        """Publish until the outbox is empty; returns the count."""
        total = 0
        while True:
            sent = self.publish_pending()
            total += sent
            if sent < self.batch_size:
                return total

    def run(self, wake, stopped, idle_wait=1.0, max_backoff=10.0):
        """Loop until `stopped` is set: publish after each wake-up (a commit)
        or every `idle_wait` seconds, backing off while the broker is away."""
        backoff = 0.0
        while not stopped.is_set():
            wake.wait(backoff or idle_wait)
            wake.clear()
            if stopped.is_set():
                break
            try:
                self.drain()
                if backoff:
                    log.info("outbox relay: broker reachable again")
                backoff = 0.0
            except Exception as exc:
                backoff = min(max_backoff, max(0.5, backoff * 2))
                log.warning("outbox relay: publish failed (%s: %s); retrying in %.1f s",
                            type(exc).__name__, exc, backoff)
        self.close()


def wait_for_empty(engine, timeout=10.0):
    """Test helper: wait until every outbox row has been published."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with engine.connect() as conn:
            if not conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar():
                return True
        time.sleep(0.05)
    return False
