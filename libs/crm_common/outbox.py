"""The transactional outbox.

A change and the events it raises are written in one transaction: the events
as rows of the service's `outbox` table. After commit, a relay publishes the
rows to the service's nameko event exchange (`<service>.events`, routing key
= event type), waits for the broker's publisher confirms, and only then deletes
them. A crash or a broker outage between commit and confirm leaves the rows in
place, so they are published later: at least once, never lost, and never for a
transaction that rolled back. Consumers de-duplicate on `event_id`.

A batch of rows is published back to back and its confirms awaited together
(one round trip per batch, not per row); a nack, a returned message, a
connection or channel error, or no confirm within `confirm_timeout` fails the
whole batch: its rows stay and the connection is rebuilt.
"""
import logging
import socket
import time

import sqlalchemy as sa
from kombu import Exchange
from kombu.serialization import dumps
from sqlalchemy.dialects import postgresql as pg

from crm_common import telemetry
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


class NotConfirmed(Exception):
    """The broker refused a published message, or did not confirm it in time."""


class PublisherConfirms:
    """Which messages published on one channel in confirm mode the broker has
    confirmed. It numbers them 1, 2, ... (delivery tags) and acks each, or
    several at once: an ack with `multiple` covers every tag up to its own."""

    def __init__(self):
        self.published = 0          # tag of the last message published
        self.confirmed = 0          # every tag up to this one is acked
        self._acked_above = set()   # single acks past `confirmed` (out of order)
        self.refusal = None         # why the broker refused a message, if it did

    def on_ack(self, delivery_tag, multiple):
        if multiple:
            self.confirmed = max(self.confirmed, delivery_tag)
            self._acked_above = {t for t in self._acked_above if t > self.confirmed}
        elif delivery_tag > self.confirmed:
            self._acked_above.add(delivery_tag)
        while self.confirmed + 1 in self._acked_above:
            self.confirmed += 1
            self._acked_above.remove(self.confirmed)

    def on_nack(self, delivery_tag, multiple):
        self.refusal = "the broker nacked message %d%s" % (delivery_tag,
                                                           " and those before" if multiple else "")

    def on_return(self, exc, exchange, routing_key, message):
        self.refusal = "the broker returned a message to %s/%s: %s" % (exchange, routing_key, exc)

    def wait(self, drain_events, timeout):
        """Return once every published message is acked; raise NotConfirmed on
        a refusal or after `timeout` s. `drain_events(timeout=)` reads what
        the broker sent (and calls on_ack...), or raises socket.timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.refusal:
                raise NotConfirmed(self.refusal)
            if self.confirmed >= self.published:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                drain_events(timeout=remaining)
            except socket.timeout:
                break
        raise NotConfirmed("%d messages not confirmed within %.1f s"
                           % (self.published - self.confirmed, timeout))


class OutboxRelay:
    """Publishes committed outbox rows, oldest first, then deletes them.

    Several instances of a service may relay from one table: rows are claimed
    with FOR UPDATE SKIP LOCKED, so each batch goes out through one of them.
    """

    def __init__(self, engine, amqp_uri, service_name, batch_size=500, connect_timeout=3,
                 confirm_timeout=10.0):
        self.engine = engine
        self.amqp_uri = amqp_uri
        self.exchange = Exchange(events_exchange_name(service_name), type="topic", durable=True,
                                 auto_delete=False)
        self.published = telemetry.OUTBOX_PUBLISHED.labels(service_name)
        self.failures = telemetry.OUTBOX_FAILURES.labels(service_name)
        self.batch_size = batch_size
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self._connection = None
        self._channel = None
        self._confirms = None

    def _get_channel(self):
        """A channel in confirm mode, its confirms counted by `self._confirms`
        (kombu's confirm_publish would wait for each message in turn)."""
        if self._channel is None:
            conn = connect(self.amqp_uri, self.connect_timeout)
            try:
                channel = conn.channel()
                self.exchange(channel).declare()
                confirms = PublisherConfirms()
                channel.events["basic_ack"].add(confirms.on_ack)
                channel.events["basic_nack"].add(confirms.on_nack)
                channel.events["basic_return"].add(confirms.on_return)
                channel.confirm_select()
            except Exception:
                conn.collect()
                raise
            self._connection, self._channel, self._confirms = conn, channel, confirms
        return self._channel

    def _drop_connection(self):
        """Forget a failed connection without the closing handshake, which a
        broker that stopped answering would never complete."""
        conn, self._connection, self._channel, self._confirms = self._connection, None, None, None
        if conn is not None:
            try:
                conn.collect()
            except Exception:
                log.debug("collecting a broken relay connection", exc_info=True)

    def close(self):
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:  # the connection is already broken: nothing to release
                log.debug("releasing a broken relay connection", exc_info=True)
        self._connection = self._channel = self._confirms = None

    def _publish_confirmed(self, rows, until=None):
        """Publish `rows` in order; return once the broker confirmed them all
        (within `confirm_timeout`, and by the monotonic time `until` if given)."""
        deadline = time.monotonic() + self.confirm_timeout
        if until is not None:
            deadline = min(deadline, until)
        channel = self._get_channel()
        confirms = self._confirms
        for row in rows:
            # As kombu's Producer.publish(serializer="json", delivery_mode=2)
            # builds it: the same body, properties and headers as before.
            content_type, content_encoding, body = dumps(row.payload, serializer="json")
            message = channel.prepare_message(body, priority=0, content_type=content_type,
                                              content_encoding=content_encoding,
                                              headers=row.headers,
                                              properties={"delivery_mode": 2})
            channel.basic_publish(message, exchange=self.exchange.name,
                                  routing_key=row.event_type,
                                  timeout=max(deadline - time.monotonic(), 0.001))
            confirms.published += 1
        confirms.wait(self._connection.drain_events, max(deadline - time.monotonic(), 0.001))

    def publish_pending(self, until=None):
        """Publish one batch (confirmed by the monotonic time `until`, if
        given); returns how many rows went out (0: nothing to do).

        Raises when the broker or the database is unreachable, or the broker
        refused or did not confirm a message in time; the rows stay.
        """
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(OUTBOX.c.id, OUTBOX.c.event_type, OUTBOX.c.payload, OUTBOX.c.headers)
                .order_by(OUTBOX.c.id).limit(self.batch_size)
                .with_for_update(skip_locked=True)).all()
            if not rows:
                return 0
            try:
                self._publish_confirmed(rows, until)
            except Exception:
                self.failures.inc()
                self._drop_connection()
                raise
            conn.execute(sa.delete(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows])))
        self.published.inc(len(rows))
        return len(rows)

    def drain(self):
        """Publish until the outbox is empty; returns the count."""
        total = 0
        while True:
            sent = self.publish_pending()
            total += sent
            if sent < self.batch_size:
                return total

    def run(self, wake, stopped, idle_wait=1.0, max_backoff=10.0, final_drain=0.0):
        """Loop until `stopped` is set: publish after each wake-up (a commit)
        or every `idle_wait` seconds, backing off while the broker is away.
        Then, unless the broker was away, publish what is left for at most
        `final_drain` seconds (see drain_before_stop)."""
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
        if final_drain > 0 and not backoff:
            self.drain_before_stop(final_drain)
        self.close()

    def drain_before_stop(self, seconds):
        """One last drain as the service stops, so that the events its last
        workers committed go out now rather than at the next start: batches
        until the outbox is empty, for `seconds` at most (confirms included).
        What is left, or what a failure leaves, stays for the next start."""
        deadline = time.monotonic() + seconds
        total = 0
        try:
            while time.monotonic() < deadline:
                sent = self.publish_pending(until=deadline)
                total += sent
                if sent < self.batch_size:
                    if total:
                        log.info("outbox relay: %d event(s) published before stopping", total)
                    return
            log.warning("outbox relay: %d event(s) published in the %.0f s before stopping; "
                        "the rest goes out at the next start", total, seconds)
        except Exception as exc:
            log.warning("outbox relay: publishing before stopping failed (%s: %s); the events "
                        "go out at the next start", type(exc).__name__, exc)


def backlog_metrics(engine, service_name):
    """The outbox's backlog (rows committed, not yet published) and the age of
    its oldest row, for the service's /metrics."""
    with engine.connect() as conn:
        count, oldest = conn.execute(sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.extract("epoch", sa.func.now() - sa.func.min(OUTBOX.c.created_at)),
                             0)).select_from(OUTBOX)).one()
    return [telemetry.gauge("crm_outbox_backlog", "Events committed and not yet published.",
                            ["service"], [([service_name], count)]),
            telemetry.gauge("crm_outbox_oldest_age_seconds",
                            "Age of the oldest event not yet published (0: none).",
                            ["service"], [([service_name], float(oldest))])]


def wait_for_empty(engine, timeout=10.0):
    """Test helper: wait until every outbox row has been published."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with engine.connect() as conn:
            if not conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar():
                return True
        time.sleep(0.05)
    return False
