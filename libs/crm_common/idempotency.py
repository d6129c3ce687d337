"""Idempotent writes: a write RPC is applied once per idempotency key.

nameko acks an RPC request only after the reply is sent, so a service that
dies between its commit and that ack has the request redelivered to another
instance; a client that retries after a 503 or a timeout sends it again too.
The gateway gives every write request a key (the client's `Idempotency-Key`
header, else a fresh one per HTTP request) and passes it in the nameko context
(`nameko.idempotency_key`), so every delivery of one request carries it.

A service records each key it applied in its `idempotency_keys` table, keyed
by (key, operation), with a fingerprint of the arguments and the JSON result,
in the same transaction as the write (`Store.idempotent` in db.py):

- The key row is inserted first (`claim`). A concurrent run with the same key
  (a redelivery racing a slow original) waits on that row's primary key until
  the first transaction ends: if it committed, the waiter returns the stored
  result and runs nothing; if it rolled back, the waiter runs the write.
- A run that does not commit (a domain error, an update that changes nothing)
  rolls the key row back with everything else: nothing is recorded, and
  running again gives the same answer.
- The same key with other arguments is refused (422 naming Idempotency-Key).

Keys are kept for RETENTION (24 h) and pruned by each service process.
"""
import datetime as dt
import hashlib
import json
import logging
from collections import namedtuple

import sqlalchemy as sa
from kombu.utils.json import dumps as wire_dumps, loads as wire_loads
from sqlalchemy.dialects import postgresql as pg

from crm_common.errors import ValidationFailed

log = logging.getLogger(__name__)

CONTEXT_KEY = "idempotency_key"       # nameko context data: header nameko.idempotency_key
HEADER = "Idempotency-Key"            # the HTTP header a key comes from, named in errors
MAX_KEY_LENGTH = 255
RETENTION = dt.timedelta(hours=24)
PRUNE_EVERY = 3600.0                  # seconds between prunes in a running service


def idempotency_columns():
    return [
        sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
        sa.Column("operation", sa.String(100), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        # NULL only while the claiming transaction runs: never seen committed.
        sa.Column("result", pg.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now(), index=True),
    ]


IDEMPOTENCY_KEYS = sa.Table("idempotency_keys", sa.MetaData(), *idempotency_columns())

Recorded = namedtuple("Recorded", "fingerprint result")


def valid_key(key):
    """1-255 visible ASCII characters (the gateway's rule for the header)."""
    return (isinstance(key, str) and 1 <= len(key) <= MAX_KEY_LENGTH
            and all("!" <= c <= "~" for c in key))


def check_key(key):
    if not valid_key(key):
        raise ValidationFailed.for_field(
            HEADER, "must be 1-%d visible ASCII characters" % MAX_KEY_LENGTH)


def fingerprint(args):
    """A digest of a request's arguments (JSON, keys sorted)."""
    text = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def as_sent(result):
    """`result` as the caller receives it (nameko's JSON), which is what a
    replay must return."""
    return wire_loads(wire_dumps(result))


def claim(session, key, operation, request):
    """Insert the key row in the session's transaction; None when claimed.
    When the key was already applied, its Recorded row (after waiting for a
    concurrent transaction that holds it to end)."""
    for _ in range(2):
        claimed = session.execute(
            pg.insert(IDEMPOTENCY_KEYS)
            .values(key=key, operation=operation, fingerprint=request)
            .on_conflict_do_nothing()
            .returning(IDEMPOTENCY_KEYS.c.key)).first()
        if claimed is not None:
            return None
        row = session.execute(
            sa.select(IDEMPOTENCY_KEYS.c.fingerprint, IDEMPOTENCY_KEYS.c.result)
            .where(IDEMPOTENCY_KEYS.c.key == key,
                   IDEMPOTENCY_KEYS.c.operation == operation)).first()
        if row is not None:
            return Recorded(row.fingerprint, row.result)
        # Pruned between the two statements: claim again.
    raise RuntimeError("idempotency key %r could not be claimed" % key)


def replay(recorded, request):
    """The stored result of an applied key; refused for other arguments."""
    if recorded.fingerprint != request:
        raise ValidationFailed.for_field(HEADER, "reused with a different request")
    return recorded.result


def record_result(session, key, operation, result):
    session.execute(sa.update(IDEMPOTENCY_KEYS)
                    .where(IDEMPOTENCY_KEYS.c.key == key,
                           IDEMPOTENCY_KEYS.c.operation == operation)
                    .values(result=result))


def prune(engine, retention=RETENTION):
    """Delete keys older than `retention`; returns how many went."""
    with engine.begin() as conn:
        gone = conn.execute(sa.delete(IDEMPOTENCY_KEYS).where(
            IDEMPOTENCY_KEYS.c.created_at < sa.func.now() - retention)).rowcount
    if gone:
        log.info("pruned %d idempotency key(s) older than %s", gone, retention)
    return gone


def run_pruner(engine, stopped, every=PRUNE_EVERY, retention=RETENTION):
    """Prune now, then every `every` seconds until `stopped` is set. Errors
    (the database away) are logged and retried at the next round: a managed
    thread that raised would take the service down with it."""
    while not stopped.is_set():
        try:
            prune(engine, retention)
        except Exception as exc:
            log.warning("idempotency keys not pruned (%s: %s)", type(exc).__name__, exc)
        stopped.wait(every)
