"""SIGTERM to a service process started as run.sh starts it (crm_common.serve):
the workers under way finish and are acked by the process itself, what they
committed is published before it exits 0. A worker stuck past
CRM_SHUTDOWN_TIMEOUT is killed (exit 1) and its message, never acked, is
handled by the next process; a second SIGTERM kills at once; a worker keeping
the whole process busy does not hold the exit either. Real processes, broker
and databases, on a vhost and databases of this module's own."""
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid

import eventlet
import pytest
import sqlalchemy as sa

from crm_common.config import with_database
from crm_common.events import envelope
from crm_common.testing import (ROOT, EventTap, delete_vhost, drop_databases, lock_waiters,
                                publish_event, vhost_uri, wait_for, writes_held)
from gateway.rpc import RpcClient

DATABASE_URL = os.environ["DATABASE_URL"]
PREFIX = os.environ["CRM_DB_PREFIX"] + "_gs"
# what nameko would do wrong within a second of the cancel (close the connection)
CONSUMER_ITERATION = 1.0


@pytest.fixture(scope="module")
def amqp():
    uri = vhost_uri(PREFIX)
    drop_databases(DATABASE_URL, PREFIX)
    yield uri
    drop_databases(DATABASE_URL, PREFIX)
    delete_vhost(PREFIX)


class ServiceProcess:
    """services/<service>/run.sh, as the supervisor or compose starts it."""

    def __init__(self, service, amqp_uri, log_path, **env):
        self.service, self.log_path = service, log_path
        venv_bin = os.path.dirname(sys.executable)
        self.env = dict(os.environ, AMQP_URI=amqp_uri, CRM_DB_PREFIX=PREFIX,
                        DATABASE_URL=DATABASE_URL, PYTHONUNBUFFERED="1", CRM_METRICS_PORT="0",
                        PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""),
                        PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "libs"),
                                                    os.path.join(ROOT, "services", service)]),
                        **env)
        self.proc = None

    def start(self, rpc):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([os.path.join(ROOT, "services", self.service, "run.sh")],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

        def answers():
            assert self.proc.poll() is None, "%s exited:\n%s" % (self.service, self.log())
            try:
                return rpc.call(self.service, "ping", timeout=2)
            except Exception:
                return None

        wait_for(answers, timeout=90, every=0.3, what="%s to answer" % self.service)
        return self

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return time.monotonic()

    def wait(self, timeout):
        """The exit status, polled (the test process is green: no blocking wait)."""
        return wait_for(lambda: self.proc.poll() is not None, timeout=timeout, every=0.05,
                        what="%s to exit" % self.service) and self.proc.returncode

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            wait_for(lambda: self.proc.poll() is not None, timeout=10)


@pytest.fixture
def services(amqp, tmp_path):
    started = []

    def start(service, rpc, **env):
        process = ServiceProcess(service, amqp, tmp_path / ("%s-%d.log" % (service, len(started))),
                                 **env)
        started.append(process)
        return process.start(rpc)

    yield start
    for process in started:
        process.close()


@pytest.fixture
def rpc(amqp):
    client = RpcClient(amqp, timeout=20.0)
    yield client
    client.close()


def engine_of(service):
    return sa.create_engine(with_database(DATABASE_URL, "%s_%s" % (PREFIX, service)),
                            poolclass=sa.pool.NullPool)


def queue_counts(amqp_uri, name):
    """(ready, unacked, consumers) of a queue of the URI's vhost (rabbitmqctl)."""
    vhost = amqp_uri.rsplit("/", 1)[1] or "/"
    out = subprocess.run(["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "-p", vhost,
                          "name", "messages_ready", "messages_unacknowledged", "consumers"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return tuple(int(f) for f in fields[1:])
    raise AssertionError("no queue %s in %s" % (name, vhost))


def test_sigterm_lets_an_rpc_in_flight_finish_acks_it_and_publishes_its_event(
        services, rpc, amqp):
    contacts = services("contacts", rpc)
    engine = engine_of("contacts")
    tap = EventTap(amqp, "contacts")
    email = "graceful.%s@example.com" % uuid.uuid4().hex[:10]
    try:
        with writes_held(engine, "contacts"):
            call = eventlet.spawn(rpc.call, "contacts", "create_contact",
                                  {"name": "Grace Ful", "email": email},
                                  context={"idempotency_key": uuid.uuid4().hex})
            wait_for(lambda: lock_waiters(engine) >= 1, timeout=20, what="the insert to wait")
            signalled = contacts.terminate()
            # The entrypoints stop (the consumer is cancelled) while the worker waits...
            wait_for(lambda: queue_counts(amqp, "rpc-contacts")[2] == 0, timeout=20,
                     what="the RPC consumer to be cancelled")
            eventlet.sleep(2 * CONSUMER_ITERATION)
            # ...and its request stays with it, unacked, not back in the queue.
            assert queue_counts(amqp, "rpc-contacts")[:2] == (0, 1)
            assert contacts.proc.poll() is None
        contact = call.wait()
        assert contact["email"] == email

        assert contacts.wait(timeout=30) == 0, contacts.log()
        elapsed = time.monotonic() - signalled
        assert elapsed < 20, "stopped in %.1f s" % elapsed
        assert "stopped gracefully" in contacts.log()
        # acked by the worker that handled it: nothing for the next process
        assert queue_counts(amqp, "rpc-contacts")[:2] == (0, 0)
        # its event went out before the exit, not at the next start
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar() == 0
            assert conn.execute(sa.text("SELECT count(*) FROM contacts WHERE email = :e"),
                                {"e": email}).scalar() == 1
        tap.wait(lambda key, body: key == "contact_created"
                 and body["contact"]["id"] == contact["id"], timeout=10)
    finally:
        tap.close()
        engine.dispose()


def lead_created(source):
    now = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return envelope({"lead": {"id": str(uuid.uuid4()), "name": "Stuck", "status": "new",
                              "source": source, "value": 0, "createdAt": now, "updatedAt": now}})


def test_a_handler_stuck_past_the_bound_is_killed_and_its_event_handled_by_the_next_process(
        services, rpc, amqp):
    timeout = 2
    analytics = services("analytics", rpc, CRM_SHUTDOWN_TIMEOUT=str(timeout))
    engine = engine_of("analytics")
    source = "shutdown-%s" % uuid.uuid4().hex[:8]
    event = lead_created(source)
    queue = "evt-leads-lead_created--analytics.on_lead_created"
    try:
        with writes_held(engine, "daily_leads"):
            publish_event(amqp, "leads", "lead_created", event)
            wait_for(lambda: lock_waiters(engine) >= 1, timeout=20,
                     what="the handler to wait for daily_leads")
            signalled = analytics.terminate()
            status = analytics.wait(timeout=timeout + 15)
            elapsed = time.monotonic() - signalled
            assert status == 1, analytics.log()
            # the bound, the kill (nameko's consumer leaves within a second) and a margin
            assert timeout <= elapsed < timeout + 4, "exited after %.1f s" % elapsed
            log = analytics.log()
            assert "not stopped within 2 s: killing it" in log
            assert "worker analytics.on_lead_created" in log
            # never acked: the broker has it again
            wait_for(lambda: queue_counts(amqp, queue)[0] == 1, timeout=10,
                     what="the event back in its queue")

        def applied():
            with engine.connect() as conn:
                seen = conn.execute(sa.text("SELECT count(*) FROM processed_events "
                                            "WHERE event_id = :e"),
                                    {"e": event["event_id"]}).scalar()
                created = conn.execute(sa.text("SELECT coalesce(sum(created), 0) FROM daily_leads "
                                               "WHERE source = :s"), {"s": source}).scalar()
            return (seen, created) if seen else None

        second = services("analytics", rpc)
        assert wait_for(applied, timeout=30, what="the next process to apply it") == (1, 1)
        assert queue_counts(amqp, queue)[:2] == (0, 0)
        signalled = second.terminate()
        assert second.wait(timeout=30) == 0, second.log()
        assert time.monotonic() - signalled < 20
    finally:
        engine.dispose()


def test_a_second_sigterm_kills_at_once(services, rpc, amqp):
    analytics = services("analytics", rpc, CRM_SHUTDOWN_TIMEOUT="60")
    engine = engine_of("analytics")
    event = lead_created("second-%s" % uuid.uuid4().hex[:8])
    try:
        with writes_held(engine, "daily_leads"):
            publish_event(amqp, "leads", "lead_created", event)
            wait_for(lambda: lock_waiters(engine) >= 1, timeout=20,
                     what="the handler to wait for daily_leads")
            analytics.terminate()
            wait_for(lambda: "stopping gracefully" in analytics.log(), timeout=10,
                     what="the graceful stop to begin")
            signalled = analytics.terminate()
            assert analytics.wait(timeout=15) == 1, analytics.log()
            assert time.monotonic() - signalled < 4
            assert "SIGTERM again: killing it" in analytics.log()
    finally:
        engine.dispose()



BLOCKER = """
import eventlet.patcher
from nameko.rpc import rpc


class Blocker:
    name = "gs_blocker"

    @rpc
    def ping(self):
        return "ok"

    @rpc
    def block(self, marker):
        open(marker, "w").close()
        eventlet.patcher.original("time").sleep(60)   # no green thread runs meanwhile
"""


def test_a_worker_blocking_the_whole_process_does_not_hold_the_exit(rpc, amqp, tmp_path):
    """The kill needs green threads to run; a worker that keeps the process
    busy lets none run, and the process still ends, KILL_GRACE after the bound."""
    from crm_common.serve import KILL_GRACE

    (tmp_path / "blocker.py").write_text(BLOCKER)
    (tmp_path / "config.yml").write_text("AMQP_URI: ${AMQP_URI}\n")
    marker = tmp_path / "blocking"
    env = dict(os.environ, AMQP_URI=amqp, CRM_SHUTDOWN_TIMEOUT="1",
               PYTHONPATH=os.path.join(ROOT, "libs"))
    with open(tmp_path / "blocker.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "crm_common.serve", "--config",
                                 "config.yml", "blocker"], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def call(method, *args):
        try:
            return rpc.call("gs_blocker", method, *args, timeout=5)
        except Exception:
            return None

    try:
        wait_for(lambda: call("ping"), timeout=60, every=0.3, what="the blocker to answer")
        eventlet.spawn_n(call, "block", str(marker))
        wait_for(marker.exists, timeout=20, what="the worker to block")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: proc.poll() is not None, timeout=1 + KILL_GRACE + 10,
                 what="the process to exit")
        elapsed = time.monotonic() - signalled
        assert proc.returncode == 1
        assert 1 + KILL_GRACE - 0.5 < elapsed < 1 + KILL_GRACE + 3, elapsed
        log = (tmp_path / "blocker.log").read_text()
        assert "not stopped %g s after SIGTERM: exiting now" % (1 + KILL_GRACE) in log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
