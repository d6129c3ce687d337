"""Helpers for the project's tests (never imported by running services)."""
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from contextlib import contextmanager

import sqlalchemy as sa
from kombu import Connection, Exchange, Queue

from crm_common.migrations import server_connection
from crm_common.events import events_exchange_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_for(check, timeout=10.0, every=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("timed out after %.1f s waiting for %s (last: %r)" % (timeout, what, last))


def entrypoint_caller(container, context_data=None):
    """`call("method", *args)`: run an entrypoint of a started nameko
    container (through nameko's entrypoint_hook) and return its result.
    `context_data` is the worker's context, as a message's `nameko.*` headers
    would set it (e.g. {"idempotency_key": ...})."""
    from nameko.testing.services import entrypoint_hook

    def call(method, *args, **kwargs):
        with entrypoint_hook(container, method, context_data=context_data) as hook:
            return hook(*args, **kwargs)
    return call


def mock_store():
    """A MagicMock for a worker's `Store` (crm_common.db) in unit tests
    (`worker_factory(Service, db=mock_store())`): `idempotent(operation,
    args, command)` runs `command` on the mocked transaction, as a call
    without an idempotency key does."""
    from unittest.mock import MagicMock

    store = MagicMock()

    def idempotent(operation, args, command):
        with store.transaction() as tx:
            return command(tx)
    store.idempotent.side_effect = idempotent
    return store


@contextmanager
def writes_held(engine, table):
    """Block writes to `table` (reads go on) until the block ends, so that
    concurrent writers pile up and race once it does (`lock_waiters` says
    when they are all waiting)."""
    with engine.connect() as conn:
        conn.execute(sa.text('LOCK TABLE "%s" IN SHARE MODE' % table))
        try:
            yield
        finally:
            conn.rollback()


def lock_waiters(engine):
    """How many sessions on the engine's database are waiting for a lock."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar()


def database_engine(container):
    """The SQLAlchemy engine of a running service container's `db` dependency."""
    return next(d for d in container.dependencies if d.attr_name == "db").engine


def drop_databases(server_url, prefix):
    """Drop every database named `<prefix>_*` (a test stack's leftovers)."""
    with server_connection(server_url) as conn:
        names = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                             {"p": prefix.replace("_", "\\_") + "\\_%"}).scalars().all()
        for name in names:
            conn.execute(sa.text('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_samples(text):
    """Prometheus's text format as {(sample name, sorted label items): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def free_port_block(size, low=20000, high=32000):
    """A base port B with B .. B+size-1 all free (below Linux's ephemeral
    range, which free_port draws from), for a stack's metrics ports."""
    for _ in range(100):
        base = random.randrange(low, high - size)
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no %d free ports in a row between %d and %d" % (size, low, high))


def _native(module):
    """The unpatched module under eventlet: the proxy runs in real OS threads,
    so its sockets never meet the test process's eventlet hub."""
    import eventlet.patcher

    return eventlet.patcher.original(module)


def vhost_uri(vhost):
    """The broker URI of `vhost`, made with rabbitmqctl where it can be; else
    CRM_TEST_AMQP_URI or AMQP_URI (shared with whatever else uses it)."""
    base = os.environ.get("CRM_TEST_AMQP_URI")
    if base:
        return base
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "add_vhost", vhost], capture_output=True)
        done = subprocess.run([ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                              capture_output=True)
        if done.returncode == 0:
            return "amqp://guest:guest@127.0.0.1:5672/" + vhost
    return os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//")


def delete_vhost(vhost):
    """Remove a vhost `vhost_uri` made (and every queue in it)."""
    ctl = shutil.which("rabbitmqctl")
    if ctl and vhost not in ("/", ""):
        subprocess.run([ctl, "delete_vhost", vhost], capture_output=True)


class TcpProxy:
    """A TCP forwarder that a test can cut and restore, to take a dependency
    (the broker) away from one component while the rest of the machine keeps it."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = None
        self._conns = []
        self._lock = _native("threading").Lock()
        self._open = False

    def start(self):
        self._listener = _native("socket").socket()
        self._listener.setsockopt(_native("socket").SOL_SOCKET, _native("socket").SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._open = True
        _native("threading").Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = _native("socket").create_connection(self.target, timeout=3)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                _native("threading").Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(_native("socket").SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Refuse new connections and break the open ones."""
        self._open = False
        if self._listener is not None:
            try:   # shutdown wakes the thread blocked in accept(); close alone does not
                self._listener.shutdown(_native("socket").SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(_native("socket").SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self):
        if not self._open:
            self.start()

    def uri(self, amqp_uri):
        """`amqp_uri` pointed at this proxy."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(amqp_uri)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit((parts.scheme, "%s127.0.0.1:%d" % (auth, self.port), parts.path,
                           parts.query, parts.fragment))


class EventTap:
    """A private queue bound to a service's event exchange (like a consumer)."""

    def __init__(self, amqp_uri, service, pattern="#"):
        self.conn = Connection(amqp_uri)
        exchange = Exchange(events_exchange_name(service), type="topic", durable=True)
        self.queue = Queue("test-tap-%s" % uuid.uuid4().hex, exchange=exchange, routing_key=pattern,
                           exclusive=True, auto_delete=True)
        self.events = []
        self.consumer = self.conn.Consumer(queues=[self.queue], callbacks=[self._on],
                                           accept=["json"])
        self.consumer.consume()

    def _on(self, body, message):
        self.events.append((message.delivery_info.get("routing_key"), body, message.headers))
        message.ack()

    def drain(self, seconds=0.2):
        try:
            self.conn.drain_events(timeout=seconds)
        except socket.timeout:
            pass

    def wait(self, predicate, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for key, body, _ in self.events:
                if predicate(key, body):
                    return key, body
            self.drain()
        raise AssertionError("no matching event in %.0f s; saw %r"
                             % (timeout, [k for k, _, _ in self.events]))

    def close(self):
        try:
            self.consumer.cancel()
        finally:
            self.conn.release()


class RunningStack:
    """The whole stack as `make run` starts it (bin/stack.py), for end-to-end
    tests and the acceptance run. Stops it (and its children) on exit."""

    def __init__(self, env, python, log_path=None, instances=(), health_timeout=120):
        self.env = env
        self.python = python
        self.log_path = log_path
        self.instances = instances
        self.health_timeout = health_timeout
        self.proc = None
        self._log = None

    @property
    def url(self):
        return "http://127.0.0.1:%s" % self.env.get("CRM_PORT", "8000")

    def start(self):
        argv = [self.python, os.path.join(ROOT, "bin", "stack.py")]
        for item in self.instances:
            argv += ["--instances", item]
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:
            self.wait_healthy()
        except Exception:
            self.stop()
            raise
        return self

    def wait_healthy(self):
        deadline = time.time() + self.health_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the stack exited with %s (log: %s)"
                                   % (self.proc.returncode, self.log_path))
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=3) as r:
                    if r.status == 200:
                        return
            except Exception:
                pass
            time.sleep(0.5)
        raise RuntimeError("the stack is not healthy after %.0f s (log: %s)"
                           % (self.health_timeout, self.log_path))

    def stop(self, timeout=30):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()

    def service_pids(self, service):
        """PIDs of this stack's `service` processes (found by their environment)."""
        pids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmdline = f.read().split(b"\0")
                with open("/proc/%s/environ" % pid, "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue
            if (("%s.service" % service).encode() in cmdline and
                    ("CRM_DB_PREFIX=%s" % self.env["CRM_DB_PREFIX"]).encode() in environ):
                pids.append(int(pid))
        return pids

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def publish_event(amqp_uri, source, event_type, body, headers=None):
    """Publish `body` as nameko would publish `source`'s `event_type` event
    (confirmed; the exchange is declared like nameko's)."""
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        exchange = Exchange(events_exchange_name(source), type="topic", durable=True)
        conn.Producer().publish(body, exchange=exchange, routing_key=event_type, serializer="json",
                                delivery_mode=2, headers=headers or {}, declare=[exchange],
                                retry=False)


def queue_depth(amqp_uri, name):
    """Messages ready in queue `name` (None: no such queue)."""
    with Connection(amqp_uri) as conn:
        try:
            return conn.channel().queue_declare(name, passive=True).message_count
        except Exception:
            return None


def _ctl_vhost(amqp_uri):
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(amqp_uri).path[1:]) or "/"


def vhost_queues(amqp_uri):
    """The names of every queue of the URI's vhost (rabbitmqctl)."""
    out = subprocess.run(["rabbitmqctl", "list_queues", "-q", "-p", _ctl_vhost(amqp_uri),
                          "--no-table-headers", "name"], capture_output=True, text=True, check=True)
    return sorted(line.strip() for line in out.stdout.splitlines() if line.strip())


def vhost_connections(amqp_uri):
    """How many client connections the URI's vhost has (rabbitmqctl)."""
    out = subprocess.run(["rabbitmqctl", "list_connections", "-q", "--no-table-headers", "vhost"],
                         capture_output=True, text=True, check=True)
    return sum(1 for line in out.stdout.splitlines() if line.strip() == _ctl_vhost(amqp_uri))
