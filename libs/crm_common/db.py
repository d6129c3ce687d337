"""The database dependency every service declares.

`Database` creates and migrates the service's own database at start, keeps an
engine (connection pool) per service process, runs the outbox relay, and
gives each worker a `Store` whose `transaction()` is the unit of work: it
rolls back unless committed, and writes the events it collected into the
outbox in the same transaction as the change.
"""
import logging
import threading

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import sessionmaker

from crm_common.config import Settings
from crm_common.errors import Unavailable
from crm_common.events import envelope
from crm_common.migrations import prepare
from crm_common.outbox import OUTBOX, OutboxRelay, outbox_row

log = logging.getLogger(__name__)

# Errors that mean "the database is not reachable", not "the query is wrong".
UNAVAILABLE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


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
        self.session.commit()
        had_events, self._events = bool(self._events), []
        if had_events and self._on_commit:
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


class Store:
    """What a worker gets: transactions on the service's database."""

    def __init__(self, provider, headers):
        self._provider = provider
        self._headers = headers

    def transaction(self):
        return UnitOfWork(self._provider.session_factory, self._provider.wake_relay, self._headers)

    def ping(self):
        with self.transaction() as tx:
            tx.session.execute(sa.text("SELECT 1"))


class Database(DependencyProvider):
    """Owns the service's database: creation, migrations, pool, outbox relay."""

    def __init__(self, alembic_dir, pool_size=10, relay=True):
        self.alembic_dir = alembic_dir
        self.pool_size = pool_size
        self.relay_enabled = relay
        self.engine = None
        self.session_factory = None
        self.relay = None
        self._wake = threading.Event()
        self._stopped = threading.Event()

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
        self.engine = sa.create_engine(dsn, pool_size=self.pool_size, max_overflow=self.pool_size,
                                       pool_timeout=5, pool_pre_ping=True,
                                       connect_args={"connect_timeout": 3,
                                                     "options": "-c timezone=UTC"})
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.relay = OutboxRelay(self.engine, settings.amqp_uri, self.container.service_name)

    def start(self):
        if self.relay_enabled:
            self._stopped.clear()
            self.container.spawn_managed_thread(self._run_relay)

    def _run_relay(self):
        self.relay.run(self._wake, self._stopped)

    def wake_relay(self):
        self._wake.set()

    def stop(self):
        self._stopped.set()
        self._wake.set()
        if self.engine is not None:
            self.engine.dispose()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        headers = {"nameko.call_id_stack": worker_ctx.call_id_stack}
        return Store(self, headers)
