"""As a service stops, its outbox relay publishes once more what was committed
(the events of its last workers) instead of leaving it to the next start;
bounded, and a broker that is away leaves the rows where they are."""
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from contacts.dependencies import ALEMBIC_DIR
from contacts.service import ContactsService
from crm_common.config import Settings
from crm_common.events import envelope
from crm_common.migrations import prepare
from crm_common.outbox import OUTBOX, OutboxRelay, outbox_row
from crm_common.testing import TcpProxy, database_engine, wait_for

SOURCE = "shutdown_probe"


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


def insert_rows(engine, n, event_type="probe_happened"):
    markers = [uuid.uuid4().hex for _ in range(n)]
    with engine.begin() as conn:
        conn.execute(sa.insert(OUTBOX), [outbox_row(event_type, envelope({"marker": m}))
                                         for m in markers])
    return markers


def pending(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar()


def markers_seen(tap, markers, timeout=10.0):
    wanted = set(markers)

    def all_seen():
        tap.drain(0.1)
        return wanted <= {b.get("marker") for _, b, _ in tap.events}

    return wait_for(all_seen, timeout=timeout, what="the events on the tap")


def stopped_already():
    wake, stopped = threading.Event(), threading.Event()
    wake.set()
    stopped.set()
    return wake, stopped


def test_a_relay_told_to_stop_publishes_what_is_committed_before_it_returns(
        engine, amqp_uri, event_tap):
    tap = event_tap(SOURCE)
    markers = insert_rows(engine, 3)
    relay = OutboxRelay(engine, amqp_uri, SOURCE, batch_size=2)
    relay.run(*stopped_already(), final_drain=5.0)
    assert pending(engine) == 0
    assert markers_seen(tap, markers)


def test_without_a_final_drain_the_rows_stay_for_the_next_start(engine, amqp_uri):
    insert_rows(engine, 2)
    OutboxRelay(engine, amqp_uri, SOURCE).run(*stopped_already())
    assert pending(engine) == 2


def test_with_the_broker_away_the_final_drain_gives_up_in_time_and_keeps_the_rows(
        engine, amqp_uri):
    parts = urlsplit(amqp_uri)
    proxy = TcpProxy(parts.hostname, parts.port or 5672).start()
    proxy.cut()
    insert_rows(engine, 2)
    relay = OutboxRelay(engine, proxy.uri(amqp_uri), SOURCE, connect_timeout=1)
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
    markers = insert_rows(db, 3, "contact_probe")
    container.stop()
    with sa.create_engine(db.url, poolclass=sa.pool.NullPool).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar() == 0
    assert markers_seen(tap, markers)
