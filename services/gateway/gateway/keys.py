"""API keys, stored hashed in the gateway's own database (`<prefix>_gateway`).

Keys are random (32 bytes), so a SHA-256 digest is a safe one-way form. The
presented key's digest is compared with each active digest in constant time.
One key is active at a time: regenerating revokes the others at once, for
every gateway process, since each request reads the active digests.
"""
import hashlib
import hmac
import logging
import secrets
import sys
from pathlib import Path

import sqlalchemy as sa

from crm_common.migrations import prepare

log = logging.getLogger(__name__)

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"
KEY_PREFIX = "crm_"
BOOTSTRAP_LOCK = 0x6B657973  # advisory lock id: "keys"

metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(8), nullable=False),
    sa.Column("suffix", sa.String(4), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)


def digest(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key():
    return KEY_PREFIX + secrets.token_hex(32)


def mask(prefix, suffix):
    return prefix + "\u2022" * 8 + suffix


class KeyStore:
    def __init__(self, engine):
        self.engine = engine

    @classmethod
    def open(cls, settings, pool_size=10, migrate=True):
        """Connect to the gateway database (creating and migrating it first
        unless `migrate` is False: gunicorn's master already did)."""
        if migrate:
            dsn = prepare(settings, "gateway", ALEMBIC_DIR)
        else:
            dsn = settings.database_dsn("gateway")
        engine = sa.create_engine(dsn, pool_size=pool_size, max_overflow=pool_size, pool_timeout=5,
                                  pool_pre_ping=True, connect_args={"connect_timeout": 3})
        return cls(engine)

    def _active(self, conn):
        return conn.execute(sa.select(api_keys.c.key_hash, api_keys.c.prefix, api_keys.c.suffix)
                            .where(api_keys.c.revoked_at.is_(None))).all()

    def verify(self, key):
        """True when `key` is the active key. Raises sa.exc.OperationalError
        when the database is away (the caller answers 503)."""
        if not key:
            return False
        presented = digest(key)
        with self.engine.connect() as conn:
            rows = self._active(conn)
        ok = False
        for row in rows:            # compare with every row: no early exit
            ok |= hmac.compare_digest(presented, row.key_hash)
        return ok

    def masked(self):
        with self.engine.connect() as conn:
            rows = self._active(conn)
        return mask(rows[-1].prefix, rows[-1].suffix) if rows else None

    def _store(self, conn, key):
        prefix = KEY_PREFIX if key.startswith(KEY_PREFIX) else ""
        conn.execute(sa.insert(api_keys).values(key_hash=digest(key), prefix=prefix,
                                                suffix=key[-4:]))

    def regenerate(self):
        """A new key replaces every active one; returns it (the only time it
        is shown whole)."""
        key = new_key()
        with self.engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": BOOTSTRAP_LOCK})
            conn.execute(sa.update(api_keys).where(api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=sa.func.now()))
            self._store(conn, key)
        log.info("api key regenerated (ends %s)", key[-4:])
        return key

    def bootstrap(self, env_key=None, out=sys.stdout):
        """While no key is stored: store CRM_API_KEY, or generate one and
        print it once. Returns the key when it was generated here."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": BOOTSTRAP_LOCK})
            if self._active(conn):
                return None
            key = env_key or new_key()
            self._store(conn, key)
        if env_key:
            log.info("api key bootstrapped from CRM_API_KEY (ends %s)", key[-4:])
            return None
        print("\n  Generated API key (shown once, store it now): %s\n" % key, file=out, flush=True)
        return key
