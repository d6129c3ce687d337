"""The fault suite's machinery (docs/faults.md): a stack of its own, a bounded
load that records every write the gateway acknowledged, and the checks of the
system against that record once the fault is over.

Used by the scenarios (`scenarios.py`, run by `bin/faults.py`) and by the
fast test in `make test` (`test_crash_before_ack.py`). Everything here talks
to the stack over HTTP on loopback, as a client would; only the final checks
read two things a client cannot see (outbox rows left, messages parked).
"""
import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import requests
import sqlalchemy as sa

from crm_common.fake_graph import FakeGraph
from crm_common.config import with_database
from crm_common.migrations import server_connection
from crm_common.testing import (ROOT, RunningStack, delete_vhost, drop_databases, free_port,
                                vhost_uri)

SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
GRAPH_TOKEN = "faults-graph-token"
META_APP_SECRET = "faults-app-secret"
META_VERIFY_TOKEN = "faults-verify-token"
RPC_TIMEOUT = 3.0
LOG_DIR = os.path.join(ROOT, "faults-logs")

SOURCES = ("Manual", "Website", "Referral", "Facebook Ad", "Trade Show")
STATUSES = ("new", "contacted", "qualified", "proposal", "closed")
VALUES = (0.0, 100.0, 250.5, 1200.0, 99.99)
ACTIVITY_TYPES = ("call", "meeting", "email_opened", "page_visit", "note_created")


def say(message):
    print("[faults] %s" % message, flush=True)


# -- the stack ------------------------------------------------------------------
class FaultStack:
    """A stack of its own (`bin/stack.py`): databases `<prefix>_*`, a RabbitMQ
    vhost of the same name, a free port, a generated API key and a FakeGraph as
    META_GRAPH_URL. `close()` stops it and removes all of that, whatever
    happened; use it as a context manager."""

    def __init__(self, name, instances=(), env=None, rpc_timeout=RPC_TIMEOUT, log_dir=LOG_DIR,
                 prefix=None):
        self.name = name
        self.prefix = prefix or "crm_faults_%s_%s" % (secrets.token_hex(3), name.replace("-", "_"))
        self.instances = tuple(instances)
        self.extra_env = dict(env or {})
        self.rpc_timeout = rpc_timeout
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, "%s.log" % name)
        self.graph = None
        self.stack = None
        self.amqp_uri = None
        self.key = "crm_" + secrets.token_hex(16)
        self.loads = []              # stopped first by close()
        self.connections = {"ours": 0, "all": 0, "max_connections": None}
        self._sampling = threading.Event()

    def load(self, recorder, **options):
        """A started `Load` on this stack, stopped by `close()` at the latest."""
        load = Load(self.url, self.key, recorder, **options)
        self.loads.append(load)
        return load.start()

    @property
    def url(self):
        return self.stack.url

    @property
    def vhost(self):
        return self.prefix

    def start(self):
        if os.path.exists(self.log_path):
            os.remove(self.log_path)
        self.graph = FakeGraph(token=GRAPH_TOKEN)
        self.amqp_uri = vhost_uri(self.vhost)
        env = dict(os.environ, CRM_DB_PREFIX=self.prefix, CRM_PORT=str(free_port()),
                   AMQP_URI=self.amqp_uri, DATABASE_URL=DATABASE_URL, CRM_API_KEY=self.key,
                   CRM_RPC_TIMEOUT="%g" % self.rpc_timeout, CRM_GATEWAY_WORKERS="2",
                   CRM_PUBLIC_URL="https://crm.example.com", CRM_LOG_LEVEL="INFO",
                   META_GRAPH_URL=self.graph.url, META_ACCESS_TOKEN=GRAPH_TOKEN,
                   META_APP_SECRET=META_APP_SECRET, META_VERIFY_TOKEN=META_VERIFY_TOKEN,
                   META_LEAD_RETRY_BACKOFF="0.5", META_LEAD_MAX_BACKOFF="4",
                   META_LEAD_CLAIM_SECONDS="5")
        env.pop("META_AD_ACCOUNT_ID", None)          # no campaign sync: link clicks stay 0
        env.update(self.extra_env)
        self.stack = RunningStack(env, sys.executable, log_path=self.log_path,
                                  instances=self.instances, health_timeout=90)
        started = time.monotonic()
        threading.Thread(target=self._sample_connections, daemon=True).start()
        self.stack.start()
        say("%s: stack %s up in %.1f s (log %s)" % (self.name, self.prefix,
                                                     time.monotonic() - started,
                                                     os.path.relpath(self.log_path, ROOT)))
        return self

    def _sample_connections(self):
        """The most PostgreSQL connections this stack held, and the server
        held, at any one time (sampled every second)."""
        pattern = self.prefix.replace("_", "\\_") + "\\_%"
        while not self._sampling.wait(1.0):
            try:
                with server_connection(DATABASE_URL) as conn:
                    ours, everyone, limit = conn.execute(sa.text(
                        "SELECT count(*) FILTER (WHERE datname LIKE :p), count(*), "
                        "current_setting('max_connections')::int FROM pg_stat_activity"),
                        {"p": pattern}).one()
            except sa.exc.SQLAlchemyError:
                continue            # the server is away (scenario 4) or full
            c = self.connections
            c["ours"], c["all"] = max(c["ours"], ours), max(c["all"], everyone)
            c["max_connections"] = limit

    def close(self):
        errors = []
        self._sampling.set()
        for load in self.loads:
            load.stop()
        for step in (lambda: self.stack and self.stack.stop(),
                     lambda: self.graph and self.graph.stop(),
                     lambda: drop_databases(DATABASE_URL, self.prefix),
                     lambda: delete_vhost(self.vhost)):
            try:
                step()
            except Exception as exc:       # clean up the rest whatever one step did
                errors.append("%s: %s" % (type(exc).__name__, exc))
        if errors:
            say("%s: clean-up trouble: %s" % (self.name, "; ".join(errors)))

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    # -- processes ----------------------------------------------------------
    def processes(self):
        """{label: sorted pids} of this stack's processes, found by their
        CRM_DB_PREFIX: each service, `gateway` (gunicorn master and workers)
        and `supervisor` (bin/stack.py)."""
        wanted = ("CRM_DB_PREFIX=%s" % self.prefix).encode()
        found = defaultdict(list)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if wanted not in f.read().split(b"\0"):
                        continue
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmdline = f.read().split(b"\0")
            except OSError:
                continue
            label = None
            for service in SERVICES:
                if ("%s.service" % service).encode() in cmdline:
                    label = service
            if any(b"gateway.wsgi:app" in part for part in cmdline):
                label = "gateway"
            elif any(part.endswith(b"bin/stack.py") for part in cmdline):
                label = "supervisor"
            if label:
                found[label].append(int(pid))
        return {label: sorted(pids) for label, pids in found.items()}

    def kill(self, pid):
        os.kill(pid, signal.SIGKILL)

    def health(self):
        try:
            r = requests.get(self.url + "/api/health", timeout=5)
            return r.status_code, r.json().get("services", {})
        except (requests.RequestException, ValueError):
            return 0, {}

    def wait_healthy(self, timeout=90):
        """Seconds until /api/health says every service answers (raises after `timeout`)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            status, _ = self.health()
            if status == 200:
                return time.monotonic() - started
            time.sleep(0.25)
        raise AssertionError("%s: the stack is not healthy %.0f s after the fault"
                             % (self.name, timeout))

    def wait_processes(self, label, count, old_pids=(), timeout=60):
        """Wait until `label` has `count` processes, none of them in `old_pids`
        (the supervisor restarted what was killed); returns their pids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.processes().get(label, [])
            if len(pids) == count and not set(pids) & set(old_pids):
                return pids
            time.sleep(0.2)
        raise AssertionError("%s: %s has no %d fresh process(es) after %.0f s (now %s)"
                             % (self.name, label, count, timeout, self.processes().get(label)))

    # -- what only the operator sees ----------------------------------------------
    def log_mentions(self, text):
        try:
            with open(self.log_path, errors="replace") as f:
                return any(text in line for line in f)
        except OSError:
            return False

    def outbox_rows(self):
        """Outbox rows not yet published, per service database."""
        left = {}
        for service in SERVICES:
            engine = sa.create_engine(with_database(DATABASE_URL, "%s_%s" % (self.prefix, service)),
                                      poolclass=sa.pool.NullPool,
                                      connect_args={"connect_timeout": 3})
            try:
                with engine.connect() as conn:
                    left[service] = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar()
            except sa.exc.SQLAlchemyError as exc:
                left[service] = "unreadable (%s)" % type(exc).__name__
            finally:
                engine.dispose()
        return {k: v for k, v in left.items() if v}

    def parked(self):
        """Messages waiting in the vhost's parking queues (consumers gave up)."""
        return {name: n for name, n in vhost_queue_depths(self.vhost).items()
                if name.endswith(".parked") and n}

    def analytics_processed(self, event_id):
        engine = sa.create_engine(with_database(DATABASE_URL, self.prefix + "_analytics"),
                                  poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM processed_events "
                                            "WHERE event_id = :e"), {"e": event_id}).scalar()
        finally:
            engine.dispose()


def vhost_queue_depths(vhost):
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        return {}
    out = subprocess.run([ctl, "list_queues", "-q", "-p", vhost, "--no-table-headers",
                          "name", "messages"], capture_output=True, text=True)
    depths = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


# -- cutting this stack's databases off (PostgreSQL keeps running) -----------------
def stack_databases(prefix):
    with server_connection(DATABASE_URL) as conn:
        return conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                            {"p": prefix.replace("_", "\\_") + "\\_%"}).scalars().all()


def cut_databases(prefix):
    """Refuse new connections to the stack's databases and end the open ones:
    for this stack, PostgreSQL is away (every other database is untouched)."""
    names = stack_databases(prefix)
    with server_connection(DATABASE_URL) as conn:
        for name in names:
            conn.execute(sa.text('ALTER DATABASE "%s" ALLOW_CONNECTIONS false' % name))
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"),
                     {"names": names})
    return names


def restore_databases(names):
    with server_connection(DATABASE_URL) as conn:
        for name in names:
            conn.execute(sa.text('ALTER DATABASE "%s" ALLOW_CONNECTIONS true' % name))


# -- the record -------------------------------------------------------------------
@dataclass
class Call:
    started: float            # seconds since the load began
    elapsed: float
    method: str
    route: str
    service: str
    status: int               # 0: no answer (timeout, connection error)
    retry_after: bool
    error: str = None


@dataclass
class Write:
    kind: str                 # lead, status, activity, contact, task
    marker: str
    seq: int
    outcome: str              # acked (2xx), refused (4xx), uncertain (5xx, no answer)
    status: int
    lead_id: str = None       # the lead a status/activity/task write is about
    id: str = None            # what the gateway answered for a create
    fields: dict = field(default_factory=dict)


def outcome_of(status):
    if 200 <= status < 300:
        return "acked"
    if 400 <= status < 500:
        return "refused"
    return "uncertain"


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []
        self.writes = []
        self.started = time.monotonic()
        self._seq = itertools.count()
        self.run = secrets.token_hex(3)
        self._markers = itertools.count(1)

    def marker(self):
        """Unique and fixed-width, so that no marker contains another."""
        with self.lock:
            return "fx%s%07d" % (self.run, next(self._markers))

    def seq(self):
        with self.lock:
            return next(self._seq)

    def call(self, c):
        with self.lock:
            self.calls.append(c)

    def write(self, w):
        with self.lock:
            self.writes.append(w)

    def now(self):
        return time.monotonic() - self.started


def service_of(path):
    for prefix, service in (("/api/leads", "leads"), ("/api/contacts", "contacts"),
                            ("/api/tasks", "tasks"), ("/api/campaigns", "campaigns"),
                            ("/api/dashboard", "analytics"), ("/api/webhooks", "leads")):
        if path.startswith(prefix):
            return service
    return "gateway"


class Client:
    """One thread's HTTP client; every request is recorded."""

    def __init__(self, url, key, recorder, timeout=30.0):
        self.url, self.key, self.recorder, self.timeout = url, key, recorder, timeout
        self.http = requests.Session()

    def request(self, method, path, route=None, json_body=None, params=None, headers=None,
                data=None, auth=True):
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = "Bearer " + self.key
        started = time.monotonic()
        status, body, retry_after, error = 0, None, False, None
        try:
            r = self.http.request(method, self.url + path, json=json_body, params=params,
                                  headers=headers, data=data, timeout=self.timeout)
            status, retry_after = r.status_code, "Retry-After" in r.headers
            try:
                body = r.json()
            except ValueError:
                body = None
        except requests.RequestException as exc:
            error = type(exc).__name__
            self.http.close()
            self.http = requests.Session()
        elapsed = time.monotonic() - started
        self.recorder.call(Call(started - self.recorder.started, elapsed, method,
                                route or path, service_of(path), status, retry_after, error))
        return status, body


# -- the load ---------------------------------------------------------------------
class LeadTrack:
    __slots__ = ("id", "marker", "tasks")

    def __init__(self, id, marker):
        self.id, self.marker, self.tasks = id, marker, 0


class Load:
    """`threads` clients writing and reading through the gateway until
    `stop()` or `seconds` have passed (whichever comes first). Each thread
    patches only the leads it created, one request at a time, so the order of
    its writes to a lead is the order they were sent."""

    MIX = (("create_lead", 3), ("patch_status", 3), ("log_activity", 2), ("create_contact", 2),
           ("create_task", 2), ("read", 5))

    def __init__(self, url, key, recorder=None, threads=4, seconds=60.0, pause=0.03,
                 mix=MIX, seed=None):
        self.url, self.key = url, key
        self.recorder = recorder or Recorder()
        self.threads = threads
        self.seconds = seconds
        self.pause = pause
        self.actions = [name for name, weight in mix for _ in range(weight)]
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self._stop = threading.Event()
        self._workers = []
        self.errors = []

    def start(self):
        self.deadline = time.monotonic() + self.seconds
        for n in range(self.threads):
            t = threading.Thread(target=self._work, args=(n,), daemon=True,
                                 name="load-%d" % n)
            t.start()
            self._workers.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._workers:
            t.join(60)


    def running(self):
        return any(t.is_alive() for t in self._workers)

    def _work(self, n):
        rnd = random.Random(self.seed + n)
        client = Client(self.url, self.key, self.recorder)
        leads = []
        try:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                action = rnd.choice(self.actions) if leads else "create_lead"
                getattr(self, action)(client, rnd, leads)
                if self.pause:
                    self._stop.wait(rnd.uniform(0, 2 * self.pause))
        except Exception as exc:      # a bug in the load itself: make it visible
            self.errors.append("load thread %d: %s: %s" % (n, type(exc).__name__, exc))
            raise

    def _record(self, kind, marker, status, **kw):
        self.recorder.write(Write(kind, marker, self.recorder.seq(), outcome_of(status), status,
                                  **kw))

    def create_lead(self, client, rnd, leads):
        marker = self.recorder.marker()
        closed = rnd.random() < 0.15
        fields = {"status": "closed" if closed else "new", "value": rnd.choice(VALUES)}
        seq = self.recorder.seq()
        status, body = client.request("POST", "/api/leads", json_body=dict(
            fields, name="Fault %s" % marker, email="%s@faults.example.com" % marker,
            company="Faults Inc", source=rnd.choice(SOURCES)),
            headers={"Idempotency-Key": marker})
        lead_id = body.get("id") if 200 <= status < 300 and isinstance(body, dict) else None
        self.recorder.write(Write("lead", marker, seq, outcome_of(status), status,
                                  lead_id=lead_id, id=lead_id, fields=fields))
        if lead_id:
            leads.append(LeadTrack(lead_id, marker))

    def patch_status(self, client, rnd, leads):
        lead = rnd.choice(leads)
        new = rnd.choice(STATUSES)
        fields = {"status": new}
        if new == "closed":
            fields["value"] = rnd.choice(VALUES)
        seq = self.recorder.seq()
        status, _ = client.request("PATCH", "/api/leads/%s" % lead.id,
                                   route="PATCH /api/leads/{id}", json_body=fields)
        self.recorder.write(Write("status", lead.marker, seq, outcome_of(status), status,
                                  lead_id=lead.id, fields=fields))

    def log_activity(self, client, rnd, leads):
        lead = rnd.choice(leads)
        marker = self.recorder.marker()
        status, _ = client.request("POST", "/api/leads/%s/activity" % lead.id,
                                   route="POST /api/leads/{id}/activity", json_body={
                                       "type": rnd.choice(ACTIVITY_TYPES),
                                       "title": "Activity %s" % marker},
                                   headers={"Idempotency-Key": marker})
        self._record("activity", marker, status, lead_id=lead.id)

    def create_contact(self, client, rnd, leads):
        marker = self.recorder.marker()
        status, body = client.request("POST", "/api/contacts", json_body={
            "name": "Contact %s" % marker, "email": "%s@contacts.example.com" % marker,
            "company": "Faults Inc", "role": "Buyer"}, headers={"Idempotency-Key": marker})
        self._record("contact", marker, status,
                     id=body.get("id") if 200 <= status < 300 and isinstance(body, dict) else None)

    def create_task(self, client, rnd, leads):
        marker = self.recorder.marker()
        lead = rnd.choice(leads) if rnd.random() < 0.7 else None
        task = {"title": "Task %s" % marker, "priority": rnd.choice(("low", "medium", "high")),
                "dueDate": (dt.date.today() + dt.timedelta(days=rnd.randint(-3, 10))).isoformat()}
        if lead:
            task.update(relatedToType="lead", relatedToId=lead.id)
        status, body = client.request("POST", "/api/tasks", json_body=task,
                                      headers={"Idempotency-Key": marker})
        self._record("task", marker, status, lead_id=lead.id if lead else None,
                     id=body.get("id") if 200 <= status < 300 and isinstance(body, dict) else None)

    def read(self, client, rnd, leads):
        lead = rnd.choice(leads)
        path, route, params = rnd.choice((
            ("/api/leads", None, {"limit": 20}),
            ("/api/leads/%s" % lead.id, "GET /api/leads/{id}", None),
            ("/api/leads/%s/activity" % lead.id, "GET /api/leads/{id}/activity", None),
            ("/api/contacts", None, {"limit": 20}),
            ("/api/tasks", None, {"limit": 20}),
            ("/api/campaigns", None, None),
            ("/api/dashboard/stats", None, None),
        ))
        client.request("GET", path, route=route or "GET " + path, params=params)


# -- the webhook: signed deliveries, Meta style --------------------------------------
def sign(raw, secret=META_APP_SECRET):
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def delivery_body(leadgen_ids, page_id="9001"):
    now = int(time.time())
    return json.dumps({"object": "page", "entry": [{"id": page_id, "time": now, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": lid, "page_id": page_id, "form_id": "555",
                                       "ad_id": "666", "created_time": now}}
        for lid in leadgen_ids]}]}).encode()


def add_graph_leads(graph, recorder, count):
    """`count` submissions on the fake Graph API, each with a unique email;
    returns {leadgen_id: email}."""
    made = {}
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
    for _ in range(count):
        marker = recorder.marker()
        lid = str(880000000000000 + int(marker[-7:]))   # unique within a run, Meta-like
        email = "%s@meta.example.com" % marker
        graph.leads[lid] = {"id": lid, "created_time": created, "form_id": "555", "ad_id": "666",
                            "campaign_id": "777", "field_data": [
                                {"name": "full_name", "values": ["Meta %s" % marker]},
                                {"name": "email", "values": [email]},
                                {"name": "company_name", "values": ["Faults Inc"]}]}
        made[lid] = email
    return made


def deliver(client, leadgen_ids, retries=20, wait=0.5):
    """Deliver like Meta: again after a non-200, a bounded number of times.
    Returns the final status."""
    raw = delivery_body(leadgen_ids)
    status = 0
    for _ in range(retries + 1):
        status, _ = client.request("POST", "/api/webhooks/meta", data=raw, auth=False, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw)})
        if status == 200:
            return status
        time.sleep(wait)
    return status


# -- reading everything back ----------------------------------------------------------
def read_all(client, path, sort, limit=1000):
    """Every item of a list endpoint (pages by offset with a stable sort),
    de-duplicated by id. Raises when a page cannot be read."""
    items, offset = {}, 0
    while True:
        status, body = client.request("GET", path, route="CHECK GET " + path,
                                      params={"limit": limit, "offset": offset, "sort": sort})
        if status != 200:
            raise RuntimeError("GET %s answered %s" % (path, status))
        for item in body:
            items[item["id"]] = item
        if len(body) < limit:
            return list(items.values())
        offset += limit


def retrying(what, fn, timeout=60.0):
    """fn() until it does not raise (a part may still be coming back)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (RuntimeError, requests.RequestException):
            if time.monotonic() > deadline:
                raise RuntimeError("could not read %s for %.0f s" % (what, timeout))
            time.sleep(1)


@dataclass
class Verdict:
    lost: list = field(default_factory=list)
    duplicated: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def acceptable(writes, name, initial=None):
    """The values a lead's field may end with, given its writes in the order
    sent: the last acknowledged one, or any later one whose outcome is unknown."""
    ok = {initial} if initial is not None else set()
    for w in sorted(writes, key=lambda w: w.seq):
        if name not in w.fields or w.outcome == "refused":
            continue
        if w.outcome == "acked":
            ok = {w.fields[name]}
        else:
            ok.add(w.fields[name])
    return ok


def check_writes(client, recorder, verdict):
    """Every acknowledged write present, none applied twice, nothing refused applied."""
    writes = recorder.writes
    by_kind = defaultdict(list)
    for w in writes:
        by_kind[w.kind].append(w)

    leads = retrying("the leads", lambda: read_all(client, "/api/leads", "email"))
    by_email = defaultdict(list)
    for lead in leads:
        by_email[lead["email"]].append(lead)
    lead_writes = defaultdict(list)
    for w in by_kind["lead"] + by_kind["status"]:
        lead_writes[w.marker].append(w)

    conflicts = 0
    for w in by_kind["lead"]:
        found = by_email.get("%s@faults.example.com" % w.marker, [])
        if w.outcome == "acked" and not found:
            verdict.lost.append("lead %s (%s, acknowledged %d)" % (w.marker, w.id, w.status))
        if w.outcome == "acked" and found and found[0]["id"] != w.id:
            verdict.lost.append("lead %s answered as %s but stored as %s"
                                % (w.marker, w.id, found[0]["id"]))
        if w.outcome == "refused" and found:
            if w.status == 409:
                conflicts += 1        # the first delivery of this very request made it
            else:
                verdict.failures.append("lead %s refused (%d) but stored" % (w.marker, w.status))
        if w.outcome == "acked" and found:
            lead = found[0]
            for name in ("status", "value"):
                ok = acceptable(lead_writes[w.marker], name)
                if lead[name] not in ok:
                    verdict.lost.append("lead %s: %s is %r, acknowledged %s" % (
                        w.marker, name, lead[name], " or ".join(map(repr, sorted(ok, key=str)))))
    if conflicts:
        verdict.notes.append(
            "%d lead create(s) answered 409 for their own new email: the request was applied "
            "by an earlier delivery of itself (the unique email index caught the second)"
            % conflicts)

    activity_leads = {w.lead_id for w in by_kind["activity"]}
    titles = Counter()
    for lead_id in activity_leads:
        status, body = client.request("GET", "/api/leads/%s/activity" % lead_id,
                                      route="CHECK GET /api/leads/{id}/activity",
                                      params={"limit": 1000})
        if status != 200:
            verdict.failures.append("timeline of lead %s unreadable (%d)" % (lead_id, status))
            continue
        titles.update(a["title"] for a in body)
    count_items(verdict, by_kind["activity"], titles, "Activity %s", "activity")

    contacts = retrying("the contacts", lambda: read_all(client, "/api/contacts", "email"))
    count_items(verdict, by_kind["contact"], Counter(c["name"] for c in contacts),
                "Contact %s", "contact")
    tasks = retrying("the tasks", lambda: read_all(client, "/api/tasks", "title"))
    count_items(verdict, by_kind["task"], Counter(t["title"] for t in tasks), "Task %s", "task")
    return leads


def count_items(verdict, writes, counts, template, kind):
    for w in writes:
        n = counts.get(template % w.marker, 0)
        if w.outcome == "acked" and n == 0:
            verdict.lost.append("%s %s (acknowledged %d)" % (kind, w.marker, w.status))
        if n > 1:
            verdict.duplicated.append("%s %s stored %d times (answered %d)"
                                      % (kind, w.marker, n, w.status))
        if w.outcome == "refused" and n:
            verdict.failures.append("%s %s refused (%d) but stored" % (kind, w.marker, w.status))


# -- the dashboard against a recount ----------------------------------------------------
def day_of(timestamp):
    return dt.date.fromisoformat(timestamp[:10]) if timestamp else None


def closed_day(lead):
    if lead["status"] != "closed":
        return None
    return day_of(lead.get("closedAt") or lead["updatedAt"])


def pct_change(current, previous):
    current, previous = float(current), float(previous)
    if previous == 0:
        return 0.0 if current == 0 else 100.0
    return round((current - previous) / abs(previous) * 100.0, 1)


def figure(current, previous):
    change = pct_change(current, previous)
    return {"value": current, "change": change,
            "trend": "up" if change > 0 else "down" if change < 0 else "flat"}


def recount(leads, start, end):
    """The dashboard as CONTRACT.md's Dashboard section defines it (with
    docs/analytics.md's reading of active leads), from the leads themselves."""
    days = (end - start).days + 1
    prev_start, prev_end = start - dt.timedelta(days=days), start - dt.timedelta(days=1)

    def revenue(a, b):
        return sum((Decimal(str(l["value"])) for l in leads
                    if closed_day(l) and a <= closed_day(l) <= b), Decimal(0))

    def active(b):
        return sum(1 for l in leads if day_of(l["createdAt"]) <= b
                   and not (closed_day(l) and closed_day(l) <= b))

    def conversion(a, b):
        created = [l for l in leads if a <= day_of(l["createdAt"]) <= b]
        won = sum(1 for l in created if l["status"] == "closed")
        return round(100.0 * won / len(created), 1) if created else 0.0

    stats = {"revenue": figure(float(revenue(start, end)), float(revenue(prev_start, prev_end))),
             "active_leads": figure(active(end), active(prev_end)),
             "conversion_rate": figure(conversion(start, end), conversion(prev_start, prev_end)),
             "link_clicks": figure(0, 0)}
    chart = []
    day = start
    while day <= end:
        chart.append({"date": day.isoformat(), "value": round(float(revenue(day, day)), 2)})
        day += dt.timedelta(days=1)
    sources = Counter(l["source"] for l in leads if start <= day_of(l["createdAt"]) <= end)
    sources = [{"name": n, "value": v}
               for n, v in sorted(sources.items(), key=lambda i: (-i[1], i[0]))]
    return {"stats": stats, "revenue": chart, "sources": sources}


def read_dashboard(client, start, end):
    params = {"startDate": start.isoformat(), "endDate": end.isoformat()}
    out = {}
    for key, path in (("stats", "/api/dashboard/stats"),
                      ("revenue", "/api/dashboard/charts/revenue"),
                      ("sources", "/api/dashboard/charts/sources")):
        status, body = client.request("GET", path, route="CHECK GET " + path, params=params)
        if status != 200:
            raise RuntimeError("GET %s answered %s" % (path, status))
        out[key] = body
    out["revenue"] = [{"date": p["date"], "value": round(float(p["value"]), 2)}
                      for p in out["revenue"]]
    return out


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 0.006
    return a == b


def check_dashboard(client, verdict, timeout=60.0):
    """Analytics converges to exactly the recount (waits up to `timeout` s)."""
    end = dt.datetime.now(dt.timezone.utc).date()
    start = end - dt.timedelta(days=29)
    deadline = time.monotonic() + timeout
    shown = expected = None
    while time.monotonic() < deadline:
        try:
            leads = read_all(client, "/api/leads", "email")
            expected = recount(leads, start, end)
            shown = read_dashboard(client, start, end)
        except (RuntimeError, requests.RequestException):
            time.sleep(1)
            continue
        if same(shown, expected):
            return time.monotonic() - (deadline - timeout)
        time.sleep(1)
    diff = {k: {"analytics": shown.get(k), "recount": expected.get(k)}
            for k in expected if not same(shown.get(k), expected.get(k))} if shown and expected \
        else "could not read"
    verdict.failures.append("analytics did not converge to the recount in %.0f s: %s"
                            % (timeout, json.dumps(diff)[:1500]))
    return None


def check_quiet(stack, verdict, timeout=30.0):
    """Nothing left behind: outbox rows all published, nothing parked."""
    deadline = time.monotonic() + timeout
    left = stack.outbox_rows()
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = stack.outbox_rows()
    if left:
        verdict.failures.append("outbox rows still unpublished after %.0f s: %s" % (timeout, left))
    parked = stack.parked()
    if parked:
        verdict.failures.append("events parked (a consumer gave up): %s" % parked)


# -- the summary of one scenario --------------------------------------------------------
@dataclass
class Result:
    scenario: str
    requests: int = 0
    acked: int = 0
    lost: int = 0
    duplicated: int = 0
    s500: int = 0
    s503: int = 0
    other5xx: int = 0
    max_time: float = 0.0
    verdict: str = "FAIL"
    failures: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def summarize(name, recorder, verdict, max_time_bound=None, include_checks=False):
    """The table row of a scenario from its record and checks. Calls made by
    the final checks count only when `include_checks`."""
    calls = [c for c in recorder.calls if include_checks or not c.route.startswith("CHECK")]
    r = Result(name)
    r.requests = len(calls)
    r.acked = sum(1 for w in recorder.writes if w.outcome == "acked")
    r.lost, r.duplicated = len(verdict.lost), len(verdict.duplicated)
    r.s500 = sum(1 for c in calls if c.status == 500)
    r.s503 = sum(1 for c in calls if c.status == 503)
    r.other5xx = sum(1 for c in calls if c.status > 500 and c.status != 503)
    r.max_time = max((c.elapsed for c in calls), default=0.0)
    failures = list(verdict.failures)
    failures += ["lost: %s" % x for x in verdict.lost[:10]]
    failures += ["duplicated: %s" % x for x in verdict.duplicated[:10]]
    if r.s500:
        failures.append("%d answers were 500 (%s)" % (r.s500, routes_of(calls, 500)))
    if r.other5xx:
        failures.append("%d answers were 5xx other than 503 (%s)" % (
            r.other5xx, routes_of(calls, lambda s: s > 500 and s != 503)))
    no_retry_after = [c for c in calls if c.status == 503 and not c.retry_after]
    if no_retry_after:
        failures.append("%d 503 answers without Retry-After (%s)" % (
            len(no_retry_after), ", ".join(sorted({c.route for c in no_retry_after}))))
    unanswered = [c for c in calls if c.status == 0]
    if unanswered:
        failures.append("%d requests got no answer (%s)" % (
            len(unanswered),
            ", ".join(sorted({"%s: %s" % (c.route, c.error) for c in unanswered}))))
    if max_time_bound is not None and r.max_time > max_time_bound:
        slow = sorted(calls, key=lambda c: -c.elapsed)[:3]
        failures.append("max time to answer %.1f s > %.1f s (%s)" % (
            r.max_time, max_time_bound, "; ".join("%s %d in %.1f s at t=%.1f" % (
                c.route, c.status, c.elapsed, c.started) for c in slow)))
    if r.s503:
        answers = [c for c in calls if c.status == 503]
        verdict.notes.append("503 answers (t = seconds into the load): %s; from t=%.1f to t=%.1f, "
                             "the slowest in %.2f s" % (
                                 routes_of(answers, 503), min(c.started for c in answers),
                                 max(c.started for c in answers),
                                 max(c.elapsed for c in answers)))
    unexpected = Counter((c.route, c.status) for c in calls
                         if 400 <= c.status < 500 and c.status != 409)
    if unexpected:
        verdict.notes.append("unexpected 4xx: %s" % ", ".join(
            "%s %d x%d" % (route, status, n) for (route, status), n in sorted(unexpected.items())))
    r.failures = failures
    r.notes = list(verdict.notes)
    r.verdict = "PASS" if not failures else "FAIL"
    return r


def routes_of(calls, status):
    match = status if callable(status) else (lambda s: s == status)
    return ", ".join("%s x%d" % (route, n) for route, n in
                     sorted(Counter(c.route for c in calls if match(c.status)).items()))
