"""The services' connection pool (crm_common.pool.pooled_engine) on real
PostgreSQL: a connection is checked before use only after an idle spell."""
import os
import time

import pytest
import sqlalchemy as sa

from crm_common.config import with_database
from crm_common.pool import pooled_engine


@pytest.fixture
def make_engine():
    engines = []

    def make(idle_ping):
        engine = pooled_engine(with_database(os.environ["DATABASE_URL"], "postgres"), pool_size=1,
                               max_overflow=0, idle_ping=idle_ping)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def backend_pid(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()


def terminate(engine, pid):
    killer = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    with killer.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    killer.dispose()
    time.sleep(0.1)


def test_a_connection_closed_by_the_server_during_an_idle_spell_is_replaced_unseen(make_engine):
    engine = make_engine(idle_ping=0.05)
    pid = backend_pid(engine)
    terminate(engine, pid)            # what a database restart does to idle connections
    assert backend_pid(engine) != pid     # the check failed, a new connection answered


def test_a_connection_reused_at_once_is_not_checked(make_engine):
    engine = make_engine(idle_ping=60)
    pid = backend_pid(engine)
    terminate(engine, pid)
    # no check (it was idle for less than idle_ping): the statement meets the
    # closed connection, and the pool drops it...
    with pytest.raises(sa.exc.OperationalError):
        backend_pid(engine)
    assert backend_pid(engine) != pid  # ...so the next one gets a new connection


def test_statements_pass_through_with_a_check_after_idle(make_engine):
    engine = make_engine(idle_ping=0.0)
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE t (x int)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert conn.execute(sa.text("SELECT x FROM t")).scalar() == 1
    # the check (every checkout here) leaves no transaction open behind the pool's back
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection.info.transaction_status == 0     # IDLE
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
