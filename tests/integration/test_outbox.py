"""The transactional outbox: an event leaves only when its change commits, and
one committed while the broker is away is published once it is back. A batch
goes out in order and its rows are deleted only once the broker confirmed all
of them; a refusal or a lost connection mid-batch leaves every row in place.
As the service stops, the relay publishes once more what is committed."""
import threading
import time
import uuid
from urllib.parse import urlsplit

import amqp
import eventlet
import pytest
import sqlalchemy as sa
from kombu import Connection, Exchange, Queue
from sqlalchemy.orm import sessionmaker

from contacts.dependencies import ALEMBIC_DIR
from contacts.service import ContactsService
from crm_common.config import Settings
from crm_common.db import UnitOfWork
from crm_common.events import envelope, events_exchange_name
from crm_common.migrations import prepare
from crm_common.outbox import OUTBOX, NotConfirmed, OutboxRelay, PublisherConfirms, outbox_row
from crm_common.testing import TcpProxy, database_engine, wait_for

SOURCE = "outbox_probe"


@pytest.fixture(scope="module")
def engine():
    dsn = prepare(Settings.from_env(), SOURCE, ALEMBIC_DIR)
    engine = sa.create_engine(dsn)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def empty_outbox(engine):
    with engine.begin() as conn:
        conn.execute(sa.delete(OUTBOX))


@pytest.fixture
def broker_proxy(amqp_uri):
    parts = urlsplit(amqp_uri)
    proxy = TcpProxy(parts.hostname, parts.port or 5672).start()
    yield proxy
    proxy.cut()


def pending(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar()


def commit_event(engine, marker, fail=False):
    with UnitOfWork(sessionmaker(engine)) as tx:
        tx.session.execute(sa.text("SELECT 1"))
        tx.emit("probe_happened", {"marker": marker})
        if fail:
            raise RuntimeError("the change failed")
        tx.commit()


def insert_batch(engine, n, event_type="probe_happened"):
    """`n` committed outbox rows in id order; their markers, in that order."""
    markers = ["%s-%03d" % (uuid.uuid4().hex[:8], i) for i in range(n)]
    with engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX), [outbox_row(event_type, envelope({"marker": m}))
                                         for m in markers])
    return markers


def seen(tap, markers, timeout=15.0):
    """The markers of `markers` the tap received, in arrival order, once all have."""
    wanted, got = set(markers), []
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = [b["marker"] for _, b, _ in tap.events if b.get("marker") in wanted]
        if wanted <= set(got):
            return got
        tap.drain()
    raise AssertionError("%d of %d events arrived" % (len(set(got)), len(wanted)))


def test_an_event_is_not_published_when_its_transaction_rolls_back(engine, amqp_uri, event_tap):
    tap = event_tap(SOURCE)
    relay = OutboxRelay(engine, amqp_uri, SOURCE)
    marker = uuid.uuid4().hex
    with pytest.raises(RuntimeError):
        commit_event(engine, marker, fail=True)
    assert pending(engine) == 0
    assert relay.drain() == 0
    committed = uuid.uuid4().hex
    commit_event(engine, committed)
    assert relay.drain() == 1
    tap.wait(lambda k, b: b["marker"] == committed)
    assert not [b for _, b, _ in tap.events if b["marker"] == marker]
    relay.close()


def test_each_event_carries_the_envelope(engine, amqp_uri, event_tap):
    tap = event_tap(SOURCE, "probe_happened")
    marker = uuid.uuid4().hex
    commit_event(engine, marker)
    OutboxRelay(engine, amqp_uri, SOURCE).drain()
    key, body = tap.wait(lambda k, b: b["marker"] == marker)
    assert key == "probe_happened" and body["version"] == 1
    uuid.UUID(body["event_id"])
    assert body["occurred_at"].endswith("Z")


def test_an_event_committed_while_the_broker_is_away_is_published_when_it_returns(
        engine, amqp_uri, event_tap, broker_proxy):
    tap = event_tap(SOURCE)          # connected directly: only the relay loses the broker
    relay = OutboxRelay(engine, broker_proxy.uri(amqp_uri), SOURCE, connect_timeout=1)
    wake, stopped = threading.Event(), threading.Event()
    loop = eventlet.spawn(relay.run, wake, stopped, 0.2, 0.5)
    try:
        first = uuid.uuid4().hex
        commit_event(engine, first)
        wake.set()
        tap.wait(lambda k, b: b["marker"] == first)
        # The tap can see the event before the broker's confirm reaches the
        # relay; cut only once the relay has it confirmed (else it is, rightly,
        # published again later: at least once).
        wait_for(lambda: pending(engine) == 0, what="the first event to be confirmed")

        broker_proxy.cut()
        lost_broker = uuid.uuid4().hex
        commit_event(engine, lost_broker)
        wake.set()
        eventlet.sleep(1.5)                     # the relay tries, fails, backs off
        assert pending(engine) == 1
        assert not [b for _, b, _ in tap.events if b["marker"] == lost_broker]

        broker_proxy.restore()
        tap.wait(lambda k, b: b["marker"] == lost_broker, timeout=15)
        wait_for(lambda: pending(engine) == 0, what="the outbox to empty")
    finally:
        stopped.set()
        wake.set()
        loop.wait()


def test_a_batch_is_published_oldest_first_and_deleted_once_confirmed(engine, amqp_uri, event_tap):
    tap = event_tap(SOURCE)
    markers = insert_batch(engine, 500)
    relay = OutboxRelay(engine, amqp_uri, SOURCE, batch_size=500)
    try:
        assert relay.publish_pending() == 500
        assert pending(engine) == 0
        assert seen(tap, markers) == markers
    finally:
        relay.close()


def test_rows_stay_when_the_broker_does_not_confirm_in_time(engine, amqp_uri, event_tap,
                                                            monkeypatch):
    tap = event_tap(SOURCE)
    markers = insert_batch(engine, 50)
    monkeypatch.setattr(PublisherConfirms, "on_ack", lambda self, tag, multiple: None)
    relay = OutboxRelay(engine, amqp_uri, SOURCE, confirm_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(NotConfirmed, match="not confirmed within"):
        relay.publish_pending()
    assert time.monotonic() - started < 5
    # The broker has them (published, unconfirmed): they go out again later.
    seen(tap, markers)
    assert pending(engine) == 50
    monkeypatch.undo()
    assert relay.drain() == 50
    assert pending(engine) == 0
    relay.close()


def test_a_batch_the_broker_refuses_part_of_stays_whole(engine, amqp_uri, event_tap):
    """A queue that rejects what exceeds 10 messages: the broker nacks the
    rest of the batch, so all 500 rows stay (the first 10 go out again)."""
    tap = event_tap(SOURCE)
    markers = insert_batch(engine, 500)
    exchange = Exchange(events_exchange_name(SOURCE), type="topic", durable=True)
    full = Queue("test-full-%s" % uuid.uuid4().hex, exchange=exchange, routing_key="#",
                 exclusive=True, queue_arguments={"x-max-length": 10,
                                                  "x-overflow": "reject-publish"})
    relay = OutboxRelay(engine, amqp_uri, SOURCE, batch_size=500)
    with Connection(amqp_uri) as conn:
        full(conn.default_channel).declare()
        try:
            with pytest.raises(NotConfirmed, match="nacked"):
                relay.publish_pending()
            assert pending(engine) == 500
        finally:
            full(conn.default_channel).delete()
    assert relay.drain() == 500
    assert pending(engine) == 0
    assert set(seen(tap, markers)) == set(markers)
    relay.close()


def test_a_batch_to_an_exchange_gone_missing_stays_and_the_relay_reconnects(
        engine, amqp_uri, event_tap):
    relay = OutboxRelay(engine, amqp_uri, SOURCE)
    insert_batch(engine, 1)
    assert relay.drain() == 1              # connected; the exchange declared
    with Connection(amqp_uri) as conn:
        Exchange(events_exchange_name(SOURCE), type="topic")(conn.default_channel).delete()
    markers = insert_batch(engine, 200)
    with pytest.raises(amqp.exceptions.NotFound):   # the broker closes the channel: 404
        relay.publish_pending()
    assert pending(engine) == 200
    tap = event_tap(SOURCE)
    assert relay.drain() == 200            # a new connection declares the exchange again
    assert seen(tap, markers) == markers
    relay.close()


def test_a_batch_whose_connection_breaks_mid_way_stays_whole(engine, amqp_uri, event_tap,
                                                             broker_proxy):
    tap = event_tap(SOURCE)
    markers = insert_batch(engine, 500)
    relay = OutboxRelay(engine, broker_proxy.uri(amqp_uri), SOURCE, batch_size=500,
                        connect_timeout=1)
    channel = relay._get_channel()
    publish, count = channel.basic_publish, iter(range(1, 501))

    def publish_then_cut(*args, **kwargs):
        publish(*args, **kwargs)
        if next(count) == 250:
            broker_proxy.cut()
    channel.basic_publish = publish_then_cut
    with pytest.raises(OSError):         # the broker's side of the socket closed
        relay.publish_pending()
    assert pending(engine) == 500
    broker_proxy.restore()
    assert relay.drain() == 500
    assert pending(engine) == 0
    assert set(seen(tap, markers)) == set(markers)
    relay.close()


def test_the_backlog_and_the_published_count_are_in_the_metrics(engine, amqp_uri, event_tap):
    from crm_common.outbox import backlog_metrics
    from crm_common.telemetry import OUTBOX_PUBLISHED

    def backlog():
        families = {f.name: f.samples[0].value for f in backlog_metrics(engine, SOURCE)}
        return families["crm_outbox_backlog"], families["crm_outbox_oldest_age_seconds"]

    assert backlog() == (0, 0)
    tap = event_tap(SOURCE)
    markers = insert_batch(engine, 7)
    time.sleep(0.05)
    count, age = backlog()
    assert count == 7 and age > 0
    published = OUTBOX_PUBLISHED.labels(SOURCE)._value.get()
    relay = OutboxRelay(engine, amqp_uri, SOURCE)
    try:
        assert relay.publish_pending() == 7
        seen(tap, markers)
    finally:
        relay.close()
    assert backlog() == (0, 0)
    assert OUTBOX_PUBLISHED.labels(SOURCE)._value.get() == published + 7


# -- as the service stops: its relay publishes once more what was committed
# (the events of its last workers) instead of leaving it to the next start;
# bounded, and a broker that is away leaves the rows where they are.

def stopped_already():
    wake, stopped = threading.Event(), threading.Event()
    wake.set()
    stopped.set()
    return wake, stopped


def test_a_relay_told_to_stop_publishes_what_is_committed_before_it_returns(
        engine, amqp_uri, event_tap):
    tap = event_tap(SOURCE)
    markers = insert_batch(engine, 3)
    relay = OutboxRelay(engine, amqp_uri, SOURCE, batch_size=2)
    relay.run(*stopped_already(), final_drain=5.0)
    assert pending(engine) == 0
    assert sorted(seen(tap, markers)) == sorted(markers)


def test_without_a_final_drain_the_rows_stay_for_the_next_start(engine, amqp_uri):
    insert_batch(engine, 2)
    OutboxRelay(engine, amqp_uri, SOURCE).run(*stopped_already())
    assert pending(engine) == 2


def test_with_the_broker_away_the_final_drain_gives_up_in_time_and_keeps_the_rows(
        engine, amqp_uri, broker_proxy):
    broker_proxy.cut()
    insert_batch(engine, 2)
    relay = OutboxRelay(engine, broker_proxy.uri(amqp_uri), SOURCE, connect_timeout=1)
    started = time.monotonic()
    relay.run(*stopped_already(), final_drain=2.0)
    assert time.monotonic() - started < 4.0
    assert pending(engine) == 2


def test_a_stopping_service_publishes_the_rows_committed_last(
        container_factory, service_config, event_tap):
    """Rows committed just before the stop, which the relay's rounds have not
    published yet (here: its rounds publish nothing), go out before stop()
    returns."""
    tap = event_tap("contacts")
    container = container_factory(ContactsService, service_config)
    container.start()
    provider = next(d for d in container.dependencies if d.attr_name == "db")
    provider.relay.drain = lambda: 0
    db = database_engine(container)
    markers = insert_batch(db, 3, "contact_probe")
    container.stop()
    with sa.create_engine(db.url, poolclass=sa.pool.NullPool).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar() == 0
    assert sorted(seen(tap, markers)) == sorted(markers)
