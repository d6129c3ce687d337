"""Connection pools: the engine every process of the stack uses for PostgreSQL."""
import time

import sqlalchemy as sa

# A pooled connection idle longer than this is checked before it is handed out.
IDLE_PING_SECONDS = 1.0


def pooled_engine(dsn, pool_size, max_overflow, idle_ping=IDLE_PING_SECONDS, **kwargs):
    """An engine whose pool checks a connection (`SELECT 1`) before handing
    it out only when it has been idle for `idle_ping` seconds.

    SQLAlchemy's `pool_pre_ping` checks every checkout: a round trip per
    transaction, a few percent of a service's CPU on a simple read. Under load
    connections come back within milliseconds and the check is wasted; after
    an idle spell (when a restarted server has closed them) it is what saves
    the first requests: a connection that fails it is replaced before use.
    A connection that breaks between two quick uses fails its statement, and
    SQLAlchemy then drops every connection of the pool made before the break.
    """
    engine = sa.create_engine(dsn, pool_size=pool_size, max_overflow=max_overflow, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def fresh(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkin")
    def back(dbapi_connection, record):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def check(dbapi_connection, record, proxy):
        if time.monotonic() - record.info.get("idle_since", 0.0) < idle_ping:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        except Exception as exc:
            # the pool closes this one and checks out another (up to 3 tries)
            raise sa.exc.DisconnectionError("connection failed its check: %s" % exc) from exc

    return engine
