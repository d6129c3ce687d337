"""API keys in the gateway's own database (real PostgreSQL)."""
import io
import os
import time

import pytest
import sqlalchemy as sa

from crm_common.config import Settings
from crm_common.testing import drop_databases, wait_for
from gateway import generation
from gateway.keys import KeyStore, api_keys, digest


@pytest.fixture
def store():
    settings = Settings.from_env()
    settings = Settings(**{**settings.__dict__, "db_prefix": settings.db_prefix + "_keys"})
    drop_databases(settings.database_url, settings.db_prefix)
    store = KeyStore.open(settings, pool_size=2)
    yield store
    store.close()
    drop_databases(settings.database_url, settings.db_prefix)


def test_a_generated_key_is_printed_once_and_stored_only_hashed(store):
    out = io.StringIO()
    key = store.bootstrap(None, out=out)
    assert key and key in out.getvalue()
    assert store.verify(key)
    assert store.bootstrap(None, out=io.StringIO()) is None        # a key exists: nothing new
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(api_keys.c.key_hash)).scalars().all()
    assert stored == [digest(key)] and key not in stored


def test_the_environment_key_is_used_while_none_is_stored(store):
    out = io.StringIO()
    assert store.bootstrap("crm_from_environment_1234", out=out) is None
    assert out.getvalue() == ""                                      # nothing secret printed
    assert store.verify("crm_from_environment_1234")
    assert not store.verify("crm_from_environment_1235")
    assert store.masked().endswith("1234") and "environment" not in store.masked()


def test_regenerating_replaces_the_key_at_once(store):
    store.bootstrap("crm_first_key_abcd", out=io.StringIO())
    new = store.regenerate()
    assert store.verify(new)
    assert not store.verify("crm_first_key_abcd")
    assert store.masked().endswith(new[-4:])
    # and the environment key does not come back at the next start
    store.bootstrap("crm_first_key_abcd", out=io.StringIO())
    assert not store.verify("crm_first_key_abcd")


def test_empty_or_missing_keys_never_verify(store):
    store.bootstrap(None, out=io.StringIO())
    assert not store.verify(None) and not store.verify("")


# -- the cached copy of the active keys ------------------------------------------------
@pytest.fixture
def other_process(store):
    """A second KeyStore on the same database: another gateway worker."""
    other = KeyStore(sa.create_engine(store.engine.url, pool_size=1))
    yield other
    other.close()


def listener_pid(store):
    return store._listener.info.backend_pid


def test_the_keys_are_read_once_then_served_from_memory(store):
    store.bootstrap("crm_cached_key_0001", out=io.StringIO())
    assert store.verify("crm_cached_key_0001")
    reads = store.reads
    for _ in range(20):
        assert store.verify("crm_cached_key_0001")
        assert not store.verify("crm_wrong_key_0002")
    assert store.reads == reads


def test_a_key_regenerated_by_another_worker_is_refused_here_at_once(store, other_process):
    store.bootstrap("crm_first_key_0003", out=io.StringIO())
    assert store.verify("crm_first_key_0003")
    assert other_process.verify("crm_first_key_0003")
    new = other_process.regenerate()
    assert not store.verify("crm_first_key_0003")       # no wait: the next call already knows
    assert store.verify(new)


def test_a_key_revoked_outside_the_gateway_is_refused_within_moments(store):
    """psql, or another gateway host: no shared generation, only the NOTIFY,
    which arrives on its own, a moment after the commit."""
    store.bootstrap("crm_sql_revoked_0004", out=io.StringIO())
    assert store.verify("crm_sql_revoked_0004")
    before = generation.current()
    with store.engine.begin() as conn:
        conn.execute(sa.update(api_keys).values(revoked_at=sa.func.now()))
    wait_for(lambda: not store.verify("crm_sql_revoked_0004"), timeout=2,
             what="the revoked key refused")
    assert generation.current() == before          # the notification did it


def test_the_generation_is_shared_with_forked_processes():
    """gunicorn's master imports gateway.generation before it forks the
    workers: a bump in one is seen by the others."""
    before = generation.current()
    pid = os.fork()
    if pid == 0:                                   # the child: another worker
        generation.bump()
        os._exit(0)
    os.waitpid(pid, 0)
    assert generation.current() != before


def test_a_lost_listener_means_reading_per_request_until_it_is_back(store, other_process):
    store.listen_retry = 0.2
    store.bootstrap("crm_listener_key_0005", out=io.StringIO())
    assert store.verify("crm_listener_key_0005")
    with other_process.engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": listener_pid(store)})
    new = other_process.regenerate()      # made while this process hears nothing
    assert not store.verify("crm_listener_key_0005")
    assert store.verify(new)
    reads = store.reads
    assert store.verify(new)
    assert store.reads == reads + 1        # no listener yet: the table is read
    time.sleep(0.3)
    assert store.verify(new)               # listening again: read once more...
    reads = store.reads
    assert store.verify(new) and store.reads == reads    # ...then from memory


def test_the_copy_is_read_again_after_max_age(store):
    store.max_age = 0.0
    store.bootstrap("crm_aged_key_0006", out=io.StringIO())
    assert store.verify("crm_aged_key_0006")
    reads = store.reads
    assert store.verify("crm_aged_key_0006")
    assert store.reads == reads + 1
