"""Create a service's database if missing and bring it to the newest migration.

Run at every start of a service (and of the test session). Concurrent starts
of several instances are serialized by a PostgreSQL advisory lock.
"""
import logging
import zlib
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from crm_common.config import with_database

log = logging.getLogger(__name__)


@contextmanager
def server_connection(server_url):
    """An autocommit connection to the server's `postgres` database, for
    CREATE/DROP DATABASE (which cannot run in a transaction)."""
    engine = sa.create_engine(with_database(server_url, "postgres"), isolation_level="AUTOCOMMIT",
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def ensure_database(server_url, name):
    """CREATE DATABASE `name` unless it exists (safe when several race)."""
    with server_connection(server_url) as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": name}).scalar()
        if exists:
            return
        try:
            conn.execute(sa.text('CREATE DATABASE "%s"' % name.replace('"', '""')))
            log.info("created database %s", name)
        except sa.exc.ProgrammingError as exc:  # another instance won the race
            if "already exists" not in str(exc):
                raise


def upgrade(dsn, alembic_dir):
    """alembic upgrade head, holding an advisory lock so instances take turns."""
    alembic_dir = Path(alembic_dir)
    cfg = Config()
    cfg.set_main_option("script_location", str(alembic_dir))
    cfg.set_main_option("sqlalchemy.url", dsn.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    engine = sa.create_engine(dsn, poolclass=sa.pool.NullPool)
    lock_id = zlib.crc32(str(alembic_dir.resolve()).encode())
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()
    finally:
        engine.dispose()


def prepare(settings, owner, alembic_dir):
    ensure_database(settings.database_url, settings.database_name(owner))
    dsn = settings.database_dsn(owner)
    upgrade(dsn, alembic_dir)
    return dsn


def run_alembic_env(target_metadata):
    """The body of every service's alembic/env.py (online mode only)."""
    from alembic import context

    conn = context.config.attributes.get("connection")
    if conn is None:
        engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"),
                                  poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            _migrate(context, conn, target_metadata)
            conn.commit()
    else:
        _migrate(context, conn, target_metadata)


def _migrate(context, conn, target_metadata):
    context.configure(connection=conn, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def create_outbox_table(op):
    """The outbox every service's first migration creates (see outbox.py)."""
    from crm_common.outbox import outbox_columns

    op.create_table("outbox", *outbox_columns())


def create_idempotency_table(op):
    """The idempotency keys of a service with write RPCs (see idempotency.py)."""
    from crm_common.idempotency import idempotency_columns

    op.create_table("idempotency_keys", *idempotency_columns())
