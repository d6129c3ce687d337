"""A counter that every process of one gateway (gunicorn's master and the
workers it forks) shares: the API keys' generation (gateway/keys.py).

An anonymous shared mapping, made when this module is first imported; the
master imports it (gunicorn.conf.py) before it forks, so every worker maps
the same page. A worker that changes the keys bumps it before it answers, and
every worker compares it with the generation its cached copy was read at,
before each use: a memory read, no system call. Imported first in a worker
(tests, a gateway not under gunicorn), it is simply that process's own.
"""
import mmap
import struct

_FORMAT = "Q"
_page = mmap.mmap(-1, struct.calcsize(_FORMAT))     # MAP_SHARED | MAP_ANONYMOUS


def current():
    return struct.unpack_from(_FORMAT, _page)[0]


def bump():
    """Change the generation. Two bumps at once may both write the same new
    value: what matters is that it differs from every value read before."""
    struct.pack_into(_FORMAT, _page, 0, (current() + 1) % 2 ** 64)
