"""The database dependency every service declares.

`Database` creates and migrates the service's own database at start, keeps an
engine (connection pool) per service process, runs the outbox relay, and
gives each worker a `Store` whose `transaction()` is the unit of work: it
rolls back unless committed, and writes the events it collected into the
outbox in the same transaction as the change. `Store.idempotent()` runs a
write once per idempotency key (crm_common/idempotency.py).
"""
import logging
import threading

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import sessionmaker

from crm_common import idempotency, telemetry
from crm_common.config import Settings
from crm_common.errors import Unavailable
from crm_common.events import envelope
from crm_common.migrations import prepare
from crm_common.outbox import OUTBOX, OutboxRelay, backlog_metrics, outbox_row
from crm_common.pool import pooled_engine

log = logging.getLogger(__name__)

# Errors that mean "the database is not reachable", not "the query is wrong".
UNAVAILABLE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
# Connections beyond the pool's size, for the relay and pruner threads and a
# worker that needs a second one.
OVERFLOW = 5
# As the service stops, how long the relay may spend publishing what the last
# workers committed (what is left goes out at the next start).
FINAL_DRAIN = 5.0


def make_psycopg_cooperative():
    """Make psycopg2 yield to the eventlet hub while it waits on the server.

    Without it one slow query blocks every greenthread of the service.
    """
    import eventlet.patcher

    if eventlet.patcher.is_monkey_patched("socket"):
        from psycogreen.eventlet import patch_psycopg

        patch_psycopg()


class UnitOfWork:
    """One transaction. Use as a context manager; call `commit()` to keep it."""

    def __init__(self, session_factory, on_commit=None, headers=None):
        self._session_factory = session_factory
        self._on_commit = on_commit
        self._headers = headers or {}
        self._events = []
        self._events_written = False
        self._commit_held = False
        self.commit_requested = False
        self.session = None

    def __enter__(self):
        self.session = self._session_factory()
        return self

    def emit(self, event_type, payload):
        """Record an event; it is written to the outbox when the change commits."""
        body = envelope(payload)
        self._events.append(outbox_row(event_type, body, self._headers))
        return body

    def commit(self):
        if self._events:
            self.session.execute(sa.insert(OUTBOX), self._events)
            self._events_written = True
        self._events = []
        self.commit_requested = True
        if not self._commit_held:
            self._commit()

    def hold_commit(self):
        """From now on `commit()` writes but leaves the transaction open, for
        the holder to add its own rows and `release_commit()`."""
        self._commit_held = True

    def release_commit(self):
        self._commit_held = False
        self._commit()

    def _commit(self):
        self.session.commit()
        wake, self._events_written = self._events_written, False
        if wake and self._on_commit:
            self._on_commit()

    def __exit__(self, exc_type, exc, tb):
        self._events = []
        try:
            self.session.rollback()
            self.session.close()
        except UNAVAILABLE_ERRORS:
            log.debug("rollback on a broken connection", exc_info=True)
        if isinstance(exc, UNAVAILABLE_ERRORS):
            log.warning("database unavailable: %s", exc)
            raise Unavailable("The database is unavailable; try again shortly.") from exc
        return False


class ReadOnlyWork(UnitOfWork):
    """Reads only, outside a transaction (autocommit): no BEGIN and no
    ROLLBACK round trips. Under READ COMMITTED each statement reads its own
    snapshot either way, so a read gives the same answers as in a transaction.
    Writing here is a bug, refused before anything is sent."""

    def emit(self, event_type, payload):
        raise RuntimeError("a read cannot emit events: use transaction()")

    def commit(self):
        raise RuntimeError("a read cannot commit: use transaction()")

    def hold_commit(self):
        raise RuntimeError("a read cannot commit: use transaction()")


class Store:
    """What a worker gets: transactions on the service's database."""

    def __init__(self, provider, headers, idempotency_key=None):
        self._provider = provider
        self._headers = headers
        self._idempotency_key = idempotency_key

    @property
    def correlation_id(self):
        """The worker's correlation id (crm_common.telemetry)."""
        return self._headers.get("nameko." + telemetry.CONTEXT_KEY)

    def transaction(self, correlation_id=None):
        """A unit of work; its events carry the worker's headers, or
        `correlation_id` when given (work done for an earlier request)."""
        headers = self._headers
        if correlation_id:
            headers = dict(headers, **{"nameko." + telemetry.CONTEXT_KEY: correlation_id})
        return UnitOfWork(self._provider.session_factory, self._provider.wake_relay, headers)

    def read(self):
        """For entrypoints that only read (see ReadOnlyWork)."""
        return ReadOnlyWork(self._provider.read_session_factory)

    def idempotent(self, operation, args, command):
        """`command(tx)` (a handler that ends with `tx.commit()`), applied once
        per idempotency key of the worker's context: a repeat with the key
        returns the first run's result and runs nothing. The key's record is
        committed with the write, in one transaction (see idempotency.py).
        Without a key, it simply runs in a transaction."""
        key = self._idempotency_key
        if key is None:
            with self.transaction() as tx:
                return command(tx)
        if not self._provider.idempotency_keys:
            raise RuntimeError("%s keeps no idempotency keys: Database(idempotency_keys=True)"
                               % self._provider.container.service_name)
        idempotency.check_key(key)
        request = idempotency.fingerprint(args)
        with self.transaction() as tx:
            recorded = idempotency.claim(tx.session, key, operation, request)
            if recorded is not None:
                return idempotency.replay(recorded, request)
            tx.hold_commit()
            result = idempotency.as_sent(command(tx))
            if tx.commit_requested:
                idempotency.record_result(tx.session, key, operation, result)
                tx.release_commit()
            return result

    def ping(self):
        with self.read() as tx:
            tx.session.execute(sa.text("SELECT 1"))


class Database(DependencyProvider):
    """Owns the service's database: creation, migrations, pool, outbox relay."""

    def __init__(self, alembic_dir, pool_size=None, relay=True, idempotency_keys=False):
        """`pool_size`: connections kept open; by default one per worker the
        container runs at once (`max_workers`), so that no worker waits for
        one, plus a few more made on demand for the relay, the pruner and
        bursts (closed when they come back to a full pool: kept few, since
        opening a PostgreSQL connection costs more than most queries).
        `idempotency_keys`: the service's migrations create the table (see
        migrations.create_idempotency_table); its old keys are pruned here."""
        self.alembic_dir = alembic_dir
        self.pool_size = pool_size
        self.relay_enabled = relay
        self.idempotency_keys = idempotency_keys
        self.engine = None
        self.session_factory = self.read_session_factory = None
        self.relay = None
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._relay_done = threading.Event()
        self._relay_done.set()
        self._killing = False

    def settings(self):
        """Environment settings; a container's config may override them (tests)."""
        env = Settings.from_env()
        config = self.container.config
        return Settings(**{**env.__dict__,
                           "amqp_uri": config.get("AMQP_URI", env.amqp_uri),
                           "database_url": config.get("DATABASE_URL", env.database_url),
                           "db_prefix": config.get("CRM_DB_PREFIX", env.db_prefix)})

    def setup(self):
        make_psycopg_cooperative()
        settings = self.settings()
        dsn = prepare(settings, self.container.service_name, self.alembic_dir)
        pool_size = self.pool_size or self.container.max_workers
        self.engine = pooled_engine(dsn, pool_size=pool_size, max_overflow=OVERFLOW,
                                    pool_timeout=5,
                                    connect_args={"connect_timeout": 3,
                                                  "options": "-c timezone=UTC"})
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.read_session_factory = sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
        self.relay = OutboxRelay(self.engine, settings.amqp_uri, self.container.service_name)
        name = self.container.service_name
        telemetry.add_source((name, "outbox"), lambda: backlog_metrics(self.engine, name))

    def start(self):
        self._stopped.clear()
        self._killing = False
        if self.relay_enabled:
            self._relay_done.clear()
            self.container.spawn_managed_thread(self._run_relay)
        if self.idempotency_keys:
            self.container.spawn_managed_thread(self._prune_idempotency_keys)

    def _run_relay(self):
        try:
            self.relay.run(self._wake, self._stopped, final_drain=FINAL_DRAIN)
        finally:
            self._relay_done.set()

    def _prune_idempotency_keys(self):
        idempotency.run_pruner(self.engine, self._stopped)

    def wake_relay(self):
        self._wake.set()

    def stop(self):
        """nameko stops dependencies once the workers have finished: the relay
        publishes what they committed (FINAL_DRAIN s at most, unless killed),
        then the pool closes."""
        telemetry.remove_source((self.container.service_name, "outbox"))
        self._stopped.set()
        self._wake.set()
        if not self._killing and not self._relay_done.wait(FINAL_DRAIN + 1.0):
            log.warning("outbox relay still busy after %.0f s; stopping without it", FINAL_DRAIN)
        if self.engine is not None:
            self.engine.dispose()

    def kill(self):
        # No waiting for the relay: the container kills its thread, and the
        # rows it had not published stay in the outbox for the next start.
        self._killing = True
        self.stop()

    def get_dependency(self, worker_ctx):
        # what the events a worker raises carry: nameko's call-id stack and
        # the correlation id (crm_common.telemetry), as nameko's dispatcher would
        headers = {"nameko.call_id_stack": worker_ctx.call_id_stack,
                   "nameko." + telemetry.CONTEXT_KEY: telemetry.worker_correlation_id(worker_ctx)}
        return Store(self, headers, worker_ctx.data.get(idempotency.CONTEXT_KEY))
