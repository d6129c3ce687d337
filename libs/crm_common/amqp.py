"""Opening broker connections that fail fast.

kombu's `Connection.connect()` sleeps two seconds before its retry; a caller
with a deadline (an HTTP request, the outbox relay's loop) wants one bounded
attempt and to decide itself when to try again.
"""
from kombu import Connection


def connect(uri, timeout=3.0, **options):
    """A connected kombu Connection, or an exception within about `timeout` s."""
    conn = Connection(uri, connect_timeout=timeout, **options)
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0,
                               timeout=timeout)
    except Exception:
        conn.release()
        raise
    return conn
