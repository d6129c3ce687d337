"""API keys, stored hashed in the gateway's own database (`<prefix>_gateway`).

Keys are random (32 bytes), so a SHA-256 digest is a safe one-way form. The
presented key's digest is compared with each active digest in constant time.
One key is active at a time: regenerating revokes the others at once, for
every gateway process.

Each process keeps the active digests in memory instead of reading them on
every request (a pool checkout and a query: ~15% of a gateway worker's CPU on
GET /api/leads, by bench/profile.py). Two things keep the copy true:

- Within one gateway (gunicorn's master and its workers): a generation
  counter in memory they all share (gateway/generation.py). A process that
  changes the keys bumps it after its commit and before it answers; every
  process compares it, before each use, with the generation its copy was
  read at. So once the API has answered a regeneration, no worker of that
  gateway accepts the old key.
- Any other change (an operator's psql, another gateway host): PostgreSQL's
  LISTEN/NOTIFY. A trigger notifies `crm_api_keys` of every change of the
  table when its transaction commits; each process holds one connection
  LISTENing on it and polls it (a non-blocking read, no round trip) before
  every use of its copy. A notification drops the copy. It travels on its
  own, so it arrives within moments of the commit, not in step with it.

While the listening connection is down (or not yet up) the copy is not used:
each request reads the table, as before, and the listener is opened again at
most once a second. A server that ends the connection says so first (a FATAL
notice), which counts as down; a connection that dies silently (a network
cut) is what `max_age` (10 s) is for: the copy is read again at least that
often.
"""
import hashlib
import hmac
import logging
import secrets
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from crm_common.pool import pooled_engine
from gateway import generation

log = logging.getLogger(__name__)

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"
KEY_PREFIX = "crm_"
BOOTSTRAP_LOCK = 0x6B657973  # advisory lock id: "keys"
CHANNEL = "crm_api_keys"     # notified by a trigger on every change (migration 0002)

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
    def __init__(self, engine, max_age=10.0, listen_retry=1.0):
        self.engine = engine
        self.max_age = max_age
        self.listen_retry = listen_retry
        self._lock = threading.Lock()
        self._listener = None       # a psycopg2 connection LISTENing on CHANNEL
        self._listen_after = 0.0    # monotonic time of the next attempt to listen
        self._digests = None        # the cached active digests, or None
        self._read_at = 0.0
        self._generation = None     # the shared generation the copy was read at
        self.reads = 0              # how often the table was read (tests, benchmarks)

    @classmethod
    def open(cls, settings, pool_size=2, migrate=True):
        """Connect to the gateway database (creating and migrating it first
        unless `migrate` is False: gunicorn's master already did)."""
        if migrate:
            # alembic (with mako and pygments) is for `python -m gateway.keys`,
            # not for every worker: ~10 MiB each
            from crm_common.migrations import prepare

            dsn = prepare(settings, "gateway", ALEMBIC_DIR)
        else:
            dsn = settings.database_dsn("gateway")
        # The pool serves the reads while the cached copy cannot be trusted
        # (and the rare key management); the copy serves the rest.
        engine = pooled_engine(dsn, pool_size=pool_size, max_overflow=8, pool_timeout=5,
                               connect_args={"connect_timeout": 3})
        return cls(engine)

    def _active(self, conn):
        return conn.execute(sa.select(api_keys.c.key_hash, api_keys.c.prefix, api_keys.c.suffix)
                            .where(api_keys.c.revoked_at.is_(None))).all()

    # -- the cached digests ------------------------------------------------------
    def _listen(self):
        """Open the listening connection (under the lock). LISTEN comes before
        the table is read, so no change can fall between the two."""
        raw = self.engine.raw_connection()
        try:
            raw.detach()                       # ours alone, not the pool's
            dbapi = raw.dbapi_connection
            dbapi.autocommit = True
            with dbapi.cursor() as cur:
                cur.execute("LISTEN crm_api_keys")      # CHANNEL
        except Exception:
            raw.invalidate()
            raise
        self._listener = dbapi

    def _drop_listener(self):
        listener, self._listener, self._digests = self._listener, None, None
        self._listen_after = time.monotonic() + self.listen_retry
        if listener is not None:
            try:
                listener.close()
            except Exception:
                log.debug("closing a broken key listener", exc_info=True)

    def _poll(self):
        """Read what has arrived on the listening connection (never waits);
        False, and the listener dropped, when it is broken. A server that
        ends the connection sends a FATAL notice before closing, which the
        first poll reads without an error: that counts as broken too."""
        try:
            self._listener.poll()
        except Exception as exc:
            log.warning("api keys: the change listener broke (%s)", exc)
            self._drop_listener()
            return False
        if self._listener.notices:
            fatal = [n for n in self._listener.notices if n.startswith("FATAL")]
            del self._listener.notices[:]
            if fatal:
                log.warning("api keys: the change listener was closed (%s)", fatal[0].strip())
                self._drop_listener()
                return False
        return True

    def _cached(self):
        """The cached digests when they can be trusted, else None (under the lock)."""
        if self._listener is None:
            if time.monotonic() < self._listen_after:
                return None
            try:
                self._listen()
            except Exception as exc:
                log.warning("api keys: cannot listen for changes (%s); reading them per request",
                            exc)
                self._drop_listener()
                return None
        if not self._poll():
            return None
        if self._listener.notifies:
            self._listener.notifies.clear()
            self._digests = None
        if self._digests is not None and (generation.current() != self._generation or
                                          time.monotonic() - self._read_at > self.max_age):
            self._digests = None
        return self._digests

    def active_digests(self):
        """The active keys' digests: cached while they can be trusted, else
        read. Raises sa.exc.OperationalError when the database is away."""
        with self._lock:
            digests = self._cached()
            if digests is not None:
                return digests
            listening = self._listener is not None
        read_at, read_generation = time.monotonic(), generation.current()
        with self.engine.connect() as conn:
            digests = tuple(row.key_hash for row in self._active(conn))
        self.reads += 1
        with self._lock:
            # keep it only if no change arrived while it was read
            if listening and self._listener is not None and self._poll():
                if not self._listener.notifies:
                    self._digests, self._read_at = digests, read_at
                    self._generation = read_generation
        return digests

    def forget(self):
        """This process changed the table (committed): every process of this
        gateway drops its copy before its next use."""
        generation.bump()
        with self._lock:
            self._digests = None

    def close(self):
        with self._lock:
            self._drop_listener()
        self.engine.dispose()

    def verify(self, key):
        """True when `key` is the active key. Raises sa.exc.OperationalError
        when the database is away (the caller answers 503)."""
        if not key:
            return False
        presented = digest(key)
        ok = False
        for active in self.active_digests():      # compare with every one: no early exit
            ok |= hmac.compare_digest(presented, active)
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
        self.forget()
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
        self.forget()
        if env_key:
            log.info("api key bootstrapped from CRM_API_KEY (ends %s)", key[-4:])
            return None
        print("\n  Generated API key (shown once, store it now): %s\n" % key, file=out, flush=True)
        return key


def main():
    """`python -m gateway.keys`: migrate the gateway database and store the
    first API key (gunicorn.conf.py runs it before the workers start)."""
    import os

    from crm_common import logs
    from crm_common.config import Settings

    logs.configure(os.environ.get("CRM_LOG_LEVEL", "INFO"))
    settings = Settings.from_env()
    store = KeyStore.open(settings, pool_size=1)
    try:
        store.bootstrap(settings.api_key)
    finally:
        store.close()


if __name__ == "__main__":
    main()
