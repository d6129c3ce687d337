"""The event stream in the real gateway under gunicorn (gunicorn.conf.py,
gthread, two workers): open streams take only their own threads, the cap is
per worker, a departed client's slot comes back, and SIGTERM does not wait
for streams that never end."""
import json
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

from crm_common.testing import drop_databases, free_port, publish_event, vhost_queues, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKERS, THREADS, CAP = 2, 4, 20


class Gateway:
    def __init__(self, proc, port, key, log_path):
        self.proc, self.port, self.key, self.log_path = proc, port, key, log_path
        self.url = "http://127.0.0.1:%d" % port

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]


@pytest.fixture
def gateway(amqp_uri, tmp_path):
    prefix = os.environ["CRM_DB_PREFIX"] + "_sse"
    database_url = os.environ["DATABASE_URL"]
    port, key = free_port(), "crm_" + secrets.token_hex(16)
    env = dict(os.environ, AMQP_URI=amqp_uri, CRM_DB_PREFIX=prefix, DATABASE_URL=database_url,
               CRM_API_KEY=key, CRM_PORT=str(port), CRM_BIND="127.0.0.1",
               CRM_GATEWAY_WORKERS=str(WORKERS), CRM_GATEWAY_THREADS=str(THREADS),
               CRM_SSE_MAX_STREAMS=str(CAP), CRM_SSE_HEARTBEAT="0.5", PYTHONUNBUFFERED="1",
               # a SIGKILLed gunicorn removes no directory of its own
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
               PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "libs"),
                                           os.path.join(ROOT, "services", "gateway")]))
    log_path = tmp_path / "gateway.log"
    drop_databases(database_url, prefix)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c", "gunicorn.conf.py",
             "gateway.wsgi:app"], cwd=os.path.join(ROOT, "services", "gateway"), env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = Gateway(proc, port, key, log_path)
    try:
        def answers():
            assert proc.poll() is None, "gunicorn exited:\n" + running.log()
            try:
                return requests.get(running.url + "/api/openapi.json", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(answers, timeout=30, every=0.2, what="the gateway to answer")
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        drop_databases(database_url, prefix)


class RawStream:
    """GET /api/events/stream on a socket of its own, read as it arrives."""

    def __init__(self, gateway):
        self.sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
        self.sock.sendall(("GET /api/events/stream?key=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Accept: text/event-stream\r\n\r\n" % gateway.key).encode())
        self.buffer = b""
        self.body = b""           # the decoded body so far
        self.ended = False        # the last chunk (or EOF) came
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in
                        (line.split(":", 1) for line in lines[1:])}
        if self.status == 200:
            self.read_until(b": connected\n\n")

    def _receive(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError("nothing more within the time; body so far: %r"
                                 % self.body[-200:]) from None
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def _decode_chunks(self):
        while b"\r\n" in self.buffer:
            size_line, rest = self.buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.buffer = rest[size + 2:]
            if size == 0:
                self.ended = True
                return

    def read_until(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        self._decode_chunks()               # what came with the headers
        while needle not in self.body:
            if self.ended or time.monotonic() > deadline:
                raise AssertionError("no %r in %r" % (needle, self.body[-200:]))
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            self._receive()
            self._decode_chunks()

    def read_to_end(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not self.ended:
            assert time.monotonic() < deadline, "the stream did not end"
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                self._receive()
            except EOFError:
                return
            self._decode_chunks()

    def close(self):
        self.sock.close()


def open_until(gateway, wanted, attempts=400):
    """Open streams until `wanted` are open. gunicorn leaves it to the kernel
    which worker accepts a connection, so a worker already at its cap may be
    the one that answers (503): those are counted and closed."""
    opened, refused = [], []
    while len(opened) < wanted and len(opened) + len(refused) < attempts:
        stream = RawStream(gateway)
        if stream.status == 200:
            opened.append(stream)
        else:
            refused.append(stream)
            stream.close()
    return opened, refused


def test_streams_take_only_their_own_threads_up_to_the_cap_of_each_worker(gateway, amqp_uri):
    streams, _ = open_until(gateway, WORKERS * CAP)
    try:
        assert len(streams) == WORKERS * CAP
        for stream in streams:
            assert stream.headers["content-type"] == "text/event-stream"

        # Every worker is at its cap: whichever answers, a further stream is a 503.
        for _ in range(10):
            refused = RawStream(gateway)
            refused.close()
            assert refused.status == 503 and refused.headers["retry-after"] == "5"

        # Each worker still has its CRM_GATEWAY_THREADS for ordinary requests.
        def timed_get():
            started = time.monotonic()
            r = requests.get(gateway.url + "/api/openapi.json", timeout=10)
            return r.status_code, time.monotonic() - started

        callers = [eventlet.spawn(timed_get) for _ in range(3 * WORKERS * THREADS)]
        answers = [caller.wait() for caller in callers]
        assert all(status == 200 for status, _ in answers)
        assert max(elapsed for _, elapsed in answers) < 2.0, answers

        # A new lead reaches every open stream, in each worker.
        event = {"event_id": str(uuid.uuid4()), "occurred_at": "2024-03-10T10:00:00.000Z",
                 "version": 1, "lead": {"id": str(uuid.uuid4()), "name": "Streamed Lead"}}
        publish_event(amqp_uri, "leads", "lead_created", event)
        for stream in streams:
            stream.read_until(b"id: %s\nevent: lead.created\n" % event["event_id"].encode())
            data = stream.body.split(b"event: lead.created\ndata: ", 1)[1].split(b"\n", 1)[0]
            assert json.loads(data) == event["lead"]

        # A client that leaves gives its slot back once a heartbeat fails to reach it.
        streams.pop().close()

        def reopened():
            stream = RawStream(gateway)
            if stream.status == 200:
                return stream
            stream.close()
            return None

        streams.append(wait_for(reopened, timeout=15, every=0.2, what="a freed stream slot"))
    finally:
        for stream in streams:
            stream.close()


def test_sigterm_ends_open_streams_and_stops_within_seconds(gateway, amqp_uri):
    streams, _ = open_until(gateway, 2 * WORKERS * 3)
    assert wait_for(lambda: stream_queues(amqp_uri), timeout=10, what="the stream queues")
    started = time.monotonic()
    os.kill(gateway.proc.pid, signal.SIGTERM)
    try:
        for stream in streams:
            stream.read_to_end(timeout=5)
        gateway.proc.wait(timeout=10)
        # About 3 s (gunicorn lingers 2 s on kept-alive connections, then the
        # hub's consumer stops); graceful_timeout is 20 s: without the streams
        # ended first, the workers would wait all of it for them.
        assert time.monotonic() - started < 8.0, gateway.log()
        assert gateway.proc.returncode == 0
        assert "Traceback" not in gateway.log()
        assert not stream_queues(amqp_uri)
    finally:
        for stream in streams:
            stream.close()


def stream_queues(amqp_uri):
    return [name for name in vhost_queues(amqp_uri) if name.startswith("gateway.stream-")]
