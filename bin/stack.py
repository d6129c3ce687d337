#!/usr/bin/env python3
"""Run the whole CRM backend as local processes (what `make run` does).

Checks that RabbitMQ and PostgreSQL answer (starting them with this machine's
own commands, or docker compose where an engine runs, else saying what to do),
starts every nameko service and the gateway, restarts any process that exits
(a nameko 2.14 service exits when the broker drops while it replies), prints
the URL and the API key once the gateway is healthy, and stops everything on
Ctrl-C or SIGTERM. Each service process serves its Prometheus metrics on
its own port (CRM_METRICS_BASE_PORT, 9100: leads 9101 ... analytics 9105,
10 more per further instance; 0: none), the gateway at /metrics.

    python bin/stack.py [--instances leads=2] [--no-restart]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")
# How long the processes get to stop on SIGTERM before they are killed:
# longer than their own bound (CRM_SHUTDOWN_TIMEOUT, 20 s, + 5 s).
STOP_GRACE = 30.0
DEFAULT_METRICS_BASE_PORT = 9100


def python_path():
    parts = [os.path.join(ROOT, "libs")] + [os.path.join(ROOT, "services", s)
                                            for s in SERVICES + ("gateway",)]
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join(parts + ([existing] if existing else []))


def say(message):
    print("[stack] %s" % message, flush=True)


# -- the broker and the database ------------------------------------------------
def answers(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def endpoint(url, default_port):
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def local(host):
    return host in ("127.0.0.1", "localhost", "::1")


def start_postgres():
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if versions and shutil.which("pg_ctlcluster"):
        return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    return None


def start_rabbitmq():
    return ["rabbitmq-server", "-detached"] if shutil.which("rabbitmq-server") else None


def docker_engine():
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def ensure_dependency(name, url, default_port, local_start, compose_service, wait=60):
    host, port = endpoint(url, default_port)
    if answers(host, port):
        return True
    command = local_start() if local(host) else None
    if command:
        say("%s does not answer on %s:%d; starting it: %s" % (name, host, port, " ".join(command)))
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    elif local(host) and docker_engine():
        say("%s does not answer; starting it with docker compose" % name)
        subprocess.run(["docker", "compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                        "up", "-d", compose_service])
    else:
        say("%s does not answer on %s:%d and cannot be started from here.\n"
            "  Start it (Debian: %s), or point %s at a running one." % (
                name, host, port,
                "'pg_ctlcluster <version> main start'" if name == "PostgreSQL"
                else "'rabbitmq-server -detached'",
                "DATABASE_URL" if name == "PostgreSQL" else "AMQP_URI"))
        return False
    deadline = time.time() + wait
    while time.time() < deadline:
        if answers(host, port):
            say("%s answers on %s:%d" % (name, host, port))
            return True
        time.sleep(1)
    say("%s still does not answer on %s:%d after %d s" % (name, host, port, wait))
    return False


def ensure_dependencies(env):
    ok = ensure_dependency("RabbitMQ", env.get("AMQP_URI", "amqp://127.0.0.1:5672//"), 5672,
                           start_rabbitmq, "rabbitmq")
    ok = ensure_dependency("PostgreSQL", env.get("DATABASE_URL", "postgresql://127.0.0.1:5432"),
                           5432, start_postgres, "postgres") and ok
    if ok:
        # RabbitMQ's port opens before it accepts logins: wait for a real one.
        wait_for_amqp(env.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672//"))
    return ok


def wait_for_amqp(uri, timeout=60):
    sys.path.insert(0, os.path.join(ROOT, "libs"))
    from crm_common.amqp import connect

    deadline = time.time() + timeout
    while True:
        try:
            connect(uri, 3).release()
            return
        except Exception as exc:
            if time.time() > deadline:
                raise SystemExit("[stack] RabbitMQ refuses connections: %s" % exc)
            time.sleep(1)


# -- the processes ----------------------------------------------------------------
class Supervised:
    """One process, restarted with backoff whenever it exits."""

    def __init__(self, name, argv, cwd, env, restart=True):
        self.name, self.argv, self.cwd, self.env, self.restart = name, argv, cwd, env, restart
        self.proc = None
        self.stopping = False
        self.restarts = 0
        self.lock = threading.Lock()

    def start(self):
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc):
        prefix = ("%-11s| " % self.name).encode()
        for line in iter(proc.stdout.readline, b""):
            sys.stdout.buffer.write(prefix + line)
            sys.stdout.buffer.flush()

    def watch(self):
        backoff = 1.0
        while True:
            started = time.time()
            code = self.proc.wait()
            with self.lock:
                if self.stopping or not self.restart:
                    return
                if time.time() - started > 30:
                    backoff = 1.0
                say("%s exited with %s; restarting in %.0f s" % (self.name, code, backoff))
            time.sleep(backoff)
            backoff = min(backoff * 2, 15.0)
            with self.lock:
                if self.stopping:
                    return
                self.restarts += 1
                self.start()

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self):
        with self.lock:
            self.stopping = True
        self.signal(signal.SIGTERM)


def die_with_parent():
    """In the child: get SIGTERM if the supervisor itself dies (Linux), so a
    killed supervisor leaves no service behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def bin_path(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else name


def metrics_port(base, service, instance):
    """Where a service process serves /metrics: CRM_METRICS_BASE_PORT + 1,
    2, ... for the first instance of leads, contacts, ... and 10 more for
    each further instance (leads: 9101, 9111, ...); none when the base is 0."""
    if not base:
        return 0
    return base + 1 + SERVICES.index(service) + 10 * instance


def build(instances, env, restart, metrics_base):
    procs = []
    for service in SERVICES:
        for n in range(instances.get(service, 1)):
            label = service if instances.get(service, 1) == 1 else "%s.%d" % (service, n + 1)
            own_env = dict(env, CRM_METRICS_PORT=str(metrics_port(metrics_base, service, n)))
            # as run.sh does: nameko run, with a bounded graceful stop
            procs.append(Supervised(label, [sys.executable, "-m", "crm_common.serve",
                                            "--config", "config.yml", "%s.service" % service],
                                    os.path.join(ROOT, "services", service), own_env, restart))
    procs.append(Supervised("gateway", [bin_path("gunicorn"), "-c", "gunicorn.conf.py",
                                        "gateway.wsgi:app"],
                            os.path.join(ROOT, "services", "gateway"), env, restart))
    return procs


def wait_healthy(port, timeout):
    url = "http://127.0.0.1:%d/api/health" % port
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


def parse_instances(values):
    counts = {}
    for value in values or ():
        name, _, count = value.partition("=")
        if name not in SERVICES or not count.isdigit() or int(count) < 1:
            raise SystemExit("--instances takes SERVICE=N, SERVICE one of %s" % ", ".join(SERVICES))
        counts[name] = int(count)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", action="append", metavar="SERVICE=N")
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--health-timeout", type=float, default=120)
    parser.add_argument("--deps-only", action="store_true",
                        help="only check (and start) RabbitMQ and PostgreSQL")
    args = parser.parse_args()

    env = dict(os.environ, PYTHONPATH=python_path(), PYTHONUNBUFFERED="1")
    if not ensure_dependencies(env):
        return 1
    if args.deps_only:
        return 0
    # Subscribers' queues exist before any service publishes: an event sent
    # to an exchange with no queue bound yet would be dropped by RabbitMQ.
    say("declaring event queues (python -m crm_common.bootstrap)")
    if subprocess.run([sys.executable, "-m", "crm_common.bootstrap"], env=env, cwd=ROOT).returncode:
        say("declaring the event queues failed: not starting the services")
        return 1
    port = int(env.get("CRM_PORT") or 8000)
    metrics_base = int(env.get("CRM_METRICS_BASE_PORT") or DEFAULT_METRICS_BASE_PORT)
    procs = build(parse_instances(args.instances), env, not args.no_restart, metrics_base)

    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    for proc in procs:
        proc.start()
    for proc in procs:
        threading.Thread(target=proc.watch, daemon=True).start()

    if wait_healthy(port, args.health_timeout):
        key = env.get("CRM_API_KEY")
        say("ready: http://127.0.0.1:%d/api (OpenAPI: /api/openapi.json)" % port)
        # Never the key itself: this output often ends up in a log file.
        say("API key: %s" % ("the one in CRM_API_KEY (ends %s)" % key[-4:] if key else
                             "the one printed by the gateway on its first start "
                             "(set CRM_API_KEY to choose it; rotate with "
                             "POST /api/settings/regenerate-key)"))
        say("metrics: http://127.0.0.1:%d/metrics (gateway)%s" % (port, "".join(
            ", :%d (%s)" % (metrics_port(metrics_base, s, 0), s) for s in SERVICES)
            if metrics_base else ""))
        say("Ctrl-C stops everything")
    elif not stopping.is_set():
        say("the gateway is not healthy after %.0f s; still trying (see the logs above)"
            % args.health_timeout)

    stopping.wait()
    say("stopping")
    for proc in procs:
        proc.stop()
    deadline = time.time() + STOP_GRACE
    for proc in procs:
        while proc.proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
    for proc in procs:
        if proc.proc.poll() is None:
            say("%s did not stop in %.0f s; killing it" % (proc.name, STOP_GRACE))
            proc.signal(signal.SIGKILL)
            proc.proc.wait()
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
