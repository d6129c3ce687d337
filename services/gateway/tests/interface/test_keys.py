"""API keys in the gateway's own database (real PostgreSQL)."""
import io

import pytest
import sqlalchemy as sa

from crm_common.config import Settings
from crm_common.testing import drop_databases
from gateway.keys import KeyStore, api_keys, digest


@pytest.fixture
def store():
    settings = Settings.from_env()
    settings = Settings(**{**settings.__dict__, "db_prefix": settings.db_prefix + "_keys"})
    drop_databases(settings.database_url, settings.db_prefix)
    store = KeyStore.open(settings, pool_size=2)
    yield store
    store.engine.dispose()
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
