"""SIGTERM to the gateway's gunicorn master: a request in flight (waiting on
an RPC) is answered in full, no new connection is served, and gunicorn exits 0
well within graceful_timeout; a request stuck past it (CRM_SHUTDOWN_TIMEOUT)
does not hold the exit."""
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid

import eventlet
import pytest
import requests
import sqlalchemy as sa

from crm_common.testing import (ROOT, database_engine, drop_databases, free_port, lock_waiters,
                                wait_for, writes_held)
from leads.service import LeadsService

GRACEFUL_TIMEOUT = 20      # gunicorn.conf.py's default


@pytest.fixture
def start_gateway(amqp_uri, tmp_path):
    prefix = os.environ["CRM_DB_PREFIX"] + "_gsgw"
    database_url = os.environ["DATABASE_URL"]
    started = []

    def start(**settings):
        port, key = free_port(), "crm_" + secrets.token_hex(16)
        env = dict(os.environ, AMQP_URI=amqp_uri, CRM_DB_PREFIX=prefix,
                   DATABASE_URL=database_url, CRM_API_KEY=key, CRM_PORT=str(port),
                   CRM_BIND="127.0.0.1", CRM_RPC_TIMEOUT="15", CRM_GATEWAY_WORKERS="2",
                   PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "libs"),
                                               os.path.join(ROOT, "services", "gateway")]))
        env.pop("CRM_SHUTDOWN_TIMEOUT", None)
        env.update(settings)
        log_path = tmp_path / ("gateway-%d.log" % len(started))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c",
                 "gunicorn.conf.py", "gateway.wsgi:app"],
                cwd=os.path.join(ROOT, "services", "gateway"), env=env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        started.append(proc)
        proc.url, proc.port, proc.key = "http://127.0.0.1:%d" % port, port, key
        proc.log = lambda: log_path.read_text(errors="replace")

        def answers():
            assert proc.poll() is None, "gunicorn exited:\n" + proc.log()
            try:
                return requests.get(proc.url + "/api/openapi.json", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(answers, timeout=60, every=0.2, what="the gateway to answer")
        return proc

    drop_databases(database_url, prefix)
    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                wait_for(lambda: proc.poll() is not None, timeout=10)
        drop_databases(database_url, prefix)


@pytest.fixture
def leads(container_factory, service_config):
    container = container_factory(LeadsService, service_config)
    container.start()
    return container


def create_lead(gateway, email):
    return requests.post(gateway.url + "/api/leads", json={"name": "In Flight", "email": email},
                         headers={"Authorization": "Bearer " + gateway.key}, timeout=40)


def leads_with(engine, email):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM leads WHERE email = :e"),
                            {"e": email}).scalar()


def raw_request(port, timeout=30):
    """GET /api/health on a connection of its own: the status line, or how the
    server refused (ECONNREFUSED at connect, or the connection closed unanswered)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        try:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except socket.timeout:
            return "no answer in %d s" % timeout
    return data.split(b"\r\n", 1)[0].decode() if data else "closed"


def test_sigterm_answers_the_request_in_flight_serves_no_new_one_and_exits_0(
        start_gateway, leads):
    gateway = start_gateway()
    engine = database_engine(leads)
    email = "gunicorn.%s@example.com" % uuid.uuid4().hex[:10]

    with writes_held(engine, "leads"):
        in_flight = eventlet.spawn(create_lead, gateway, email)
        wait_for(lambda: lock_waiters(engine) >= 1, timeout=20, what="the insert to wait")
        signalled = time.monotonic()
        gateway.send_signal(signal.SIGTERM)
        # The master closes its listener and the workers stop accepting (within
        # a second: their loop's tick); a connection made now is never served.
        eventlet.sleep(2.0)
        late = eventlet.spawn(raw_request, gateway.port)
        eventlet.sleep(0.5)
        assert gateway.poll() is None and not in_flight.dead
    answer = in_flight.wait()
    assert answer.status_code == 201, answer.text
    assert answer.json()["email"] == email

    wait_for(lambda: gateway.poll() is not None, timeout=GRACEFUL_TIMEOUT + 10,
             what="gunicorn to exit")
    elapsed = time.monotonic() - signalled
    assert gateway.returncode == 0, gateway.log()
    assert elapsed < GRACEFUL_TIMEOUT - 5, "exited %.1f s after SIGTERM" % elapsed
    assert late.wait() in ("refused", "reset", "closed"), late.wait()
    assert raw_request(gateway.port) == "refused"
    assert leads_with(engine, email) == 1
    assert "Traceback" not in gateway.log()


def test_a_request_stuck_past_the_bound_does_not_hold_the_exit(start_gateway, leads):
    bound = 2
    gateway = start_gateway(CRM_SHUTDOWN_TIMEOUT=str(bound))
    engine = database_engine(leads)
    email = "stuck.%s@example.com" % uuid.uuid4().hex[:10]

    def outcome():
        try:
            return create_lead(gateway, email).status_code
        except requests.ConnectionError:
            return "no answer"

    with writes_held(engine, "leads"):
        in_flight = eventlet.spawn(outcome)
        wait_for(lambda: lock_waiters(engine) >= 1, timeout=20, what="the insert to wait")
        signalled = time.monotonic()
        gateway.send_signal(signal.SIGTERM)
        wait_for(lambda: gateway.poll() is not None, timeout=bound + 10,
                 what="gunicorn to exit")
        elapsed = time.monotonic() - signalled
        assert gateway.returncode == 0, gateway.log()
        assert bound <= elapsed < bound + 3, "exited %.1f s after SIGTERM" % elapsed
        # The client learns it got no answer; the service's worker goes on.
        assert in_flight.wait() == "no answer"
    wait_for(lambda: leads_with(engine, email) == 1, timeout=10,
             what="the service to finish the write")
