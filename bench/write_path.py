#!/usr/bin/env python3
"""Write-path benchmark: POST /api/leads and PATCH /api/leads/{id} (status
changes) through the gateway, next to a baseline measured in the same run, and
the lag until the dashboard (analytics) reflects a write.

Starts a fresh stack (bin/stack.py, databases `crm_benchwrite_*`, its own vhost
and port), inserts a pool of leads for the status changes, starts the baseline
(bench/direct_app.py: the leads service's handlers in one transaction on the
same database, without outbox, events or idempotency record, under gunicorn
with the gateway's worker settings), loads both with wrk and bench/write_path.lua
(every request a distinct write) at 32 connections, and probes the analytics
lag idle and under each write load: a lead with a source of its own is
created, then closed with a value, and the sources chart and the stats'
revenue are polled until they show it. Prints a table and writes
bench/results/write_path.json. Stops everything it started and drops its
databases and vhost on the way out.

    .venv/bin/python bench/write_path.py [--duration 15] [--connections 32] [--probes 50]

Exit status: 0 when it measured (ratios, lags over the aim, non-2xx responses
are reported, not failed); 1 when the stack, the baseline or wrk could not run.
"""
import argparse
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import read_path as rp  # noqa: E402  (also puts libs/ on sys.path)
from read_path import BenchError, fmt, say  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from kombu import Connection  # noqa: E402

from crm_common.config import with_database  # noqa: E402
from crm_common.testing import drop_databases, free_port, vhost_queues  # noqa: E402

PREFIX = "crm_benchwrite"
RESULTS = rp.RESULTS
SCRIPT = os.path.join(BENCH, "write_path.lua")
WRK_THREADS = 2
WRK_TIMEOUT = "10s"          # wrk's default (2 s) would drop slow writes from the latencies
POOL_SOURCE = "Bench Pool"   # the leads the PATCH load moves through the statuses (value 0)
AIM_LAG_P99_MS = 250.0
POLL_SECONDS = 0.01          # pause between two polls of the dashboard by a probe
SETTLE_SECONDS = 1.0         # after wrk stops: requests still in flight reach the database
DRAIN_TIMEOUT = 300.0


# -- wrk with the Lua script -------------------------------------------------------------
class WrkRun:
    """wrk with bench/write_path.lua, started in the background; `stop()` ends
    it early (SIGINT: wrk still prints its summary and the status counts)."""

    def __init__(self, binary, url, key, seconds, connections, script_args):
        self.url, self.seconds = url, seconds
        argv = [binary, "-t%d" % WRK_THREADS, "-c%d" % connections, "-d%ds" % seconds,
                "--latency", "--timeout", WRK_TIMEOUT, "-s", SCRIPT,
                "-H", "Authorization: Bearer %s" % key, url, "--"] + list(script_args)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     preexec_fn=rp.die_with_parent)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def result(self):
        try:
            out, _ = self.proc.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError("wrk did not finish %s in %d s" % (self.url, self.seconds + 30))
        finally:
            self.kill()          # interrupted (Ctrl-C): do not leave it running
        text = out.decode(errors="replace")
        if self.proc.returncode != 0:
            raise BenchError("wrk exited with %s on %s:\n%s" % (self.proc.returncode, self.url,
                                                               text))
        result = rp.parse_wrk(text)
        result["statuses"] = {code: int(n) for code, n in
                              re.findall(r"^wrk-status (\d+) (\d+)$", text, re.M)}
        result.update(url=self.url, wrk_output=text)
        return result


def script_args(mode, ids_file):
    """The Lua script's arguments: a fresh run tag each run, so that no email repeats."""
    args = [mode, secrets.token_hex(4)]
    return args + [ids_file, str(WRK_THREADS)] if mode == "patch" else args


def status_flags(side, m):
    """Non-2xx answers by status, and socket errors (timeouts included)."""
    flags = ["%s: %d x %s" % (side, n, code) for code, n in sorted(m["statuses"].items())
             if not code.startswith("2")]
    if m["non_2xx"] and not flags:
        flags.append("%s: %d non-2xx" % (side, m["non_2xx"]))
    if m["socket_errors"]:
        flags.append("%s: %d socket errors" % (side, m["socket_errors"]))
    return flags


# -- the leads database: the pool, counts, the backlog ------------------------------------
class LeadsDatabase:
    """The benchmark's own look at the stack's leads database (one connection)."""

    def __init__(self, url):
        self.engine = sa.create_engine(url, pool_size=1, max_overflow=0)

    def make_pool(self, size):
        """`size` leads at `new` with value 0 (closing them moves no revenue);
        their ids in a file for the Lua script. Returns the file's path."""
        with self.engine.begin() as conn:
            ids = conn.execute(sa.text(
                "INSERT INTO leads (id, name, email, status, source, score, value, created_at, "
                "updated_at) SELECT gen_random_uuid(), 'Pool Lead ' || i, "
                "'pool-' || i || '@bench.example', 'new', :source, 10, 0, now(), now() "
                "FROM generate_series(1, :n) AS i RETURNING id"),
                {"source": POOL_SOURCE, "n": size}).scalars().all()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE leads"))
        path = os.path.join(RESULTS, "write_path_pool.txt")
        with open(path, "w") as f:
            f.write("".join("%s\n" % i for i in ids))
        return path

    def reset_pool(self):
        """Every pool lead back to `new`, where the Lua script's cycle starts
        (behind the services' back: their events are not needed for the load)."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("UPDATE leads SET status = 'new', closed_at = NULL "
                                 "WHERE source = :source AND status <> 'new'"),
                         {"source": POOL_SOURCE})

    def writes(self):
        """(leads, status_change activities): what a run's 2xx answers must have written."""
        with self.engine.connect() as conn:
            return tuple(conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM leads), "
                "(SELECT count(*) FROM activities WHERE type = 'status_change')")).one())

    def outbox_rows(self):
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar()

    def close(self):
        self.engine.dispose()


def event_queues(amqp_uri):
    """The queues the leads events wait in (consumers' queues and their retry
    queues), and the parking queues where failed ones end up."""
    names = [n for n in vhost_queues(amqp_uri) if n.startswith("evt-leads-")]
    return ([n for n in names if not n.endswith(".parked")],
            [n for n in names if n.endswith(".parked")])


def queue_depths(amqp_uri, names):
    with Connection(amqp_uri, connect_timeout=5) as conn:
        channel = conn.channel()
        return {n: channel.queue_declare(n, passive=True).message_count for n in names}


def wait_drained(db, amqp_uri, queues, timeout=DRAIN_TIMEOUT):
    """Seconds until the outbox and the leads events' queues are empty (three
    looks in a row): the consumers (analytics first) have caught up."""
    started, calm = time.time(), 0
    with Connection(amqp_uri, connect_timeout=5) as conn:
        channel = conn.channel()
        while time.time() - started < timeout:
            waiting = db.outbox_rows() + sum(channel.queue_declare(n, passive=True).message_count
                                             for n in queues)
            calm = calm + 1 if waiting == 0 else 0
            if calm == 3:
                return time.time() - started
            time.sleep(0.2)
    raise BenchError("the leads events are still not consumed after %d s" % timeout)


# -- where the CPU goes --------------------------------------------------------------
def cpu_snapshot():
    """CPU seconds used so far by part: this stack's processes (found by their
    CRM_DB_PREFIX) and the baseline, by role; PostgreSQL, RabbitMQ and wrk (all
    of the machine's); and the machine's busy total."""
    marker = ("CRM_DB_PREFIX=%s" % PREFIX).encode()
    roles = [(b"%s.service" % s.encode(), s) for s in
             ("leads", "contacts", "tasks", "campaigns", "analytics")]
    roles += [(b"gunicorn.conf.py", "gateway"), (b"direct_app:app", "baseline")]
    used = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm, seconds = rp.process_cpu(pid)
            role = {"postgres": "postgres", "beam.smp": "rabbitmq", "wrk": "wrk"}.get(comm)
            if role is None:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if marker not in f.read().split(b"\0"):
                        continue
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
                role = next((r for needle, r in roles if needle in cmdline), "other")
        except (OSError, ValueError, IndexError):
            continue
        used[pid] = (role, seconds)
    return {"at": time.time(), "seconds": used, "busy": rp.machine_busy()}


def cpu_cores(before, after):
    """Cores used on average between two snapshots, by part."""
    elapsed = after["at"] - before["at"]
    used = {}
    for pid, (role, seconds) in after["seconds"].items():
        start = before["seconds"].get(pid, (role, 0))[1]
        used[role] = used.get(role, 0) + seconds - start
    cores = {role: round(s / elapsed, 2) for role, s in sorted(used.items())
             if s / elapsed >= 0.005}
    busy = (after["busy"] - before["busy"]) / elapsed
    # wrk has exited by the second snapshot: it is most of the rest.
    cores["rest (wrk...)"] = round(max(0.0, busy - sum(cores.values())), 2)
    cores["machine busy"] = round(busy, 2)
    return cores


# -- the lag probes --------------------------------------------------------------------
class Api:
    """One keep-alive HTTP connection with the API key, like a browser tab."""

    def __init__(self, base_url, key):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.headers = {"Authorization": "Bearer %s" % key, "Content-Type": "application/json"}
        self.conn = None

    def call(self, method, path, body=None):
        data = json.dumps(body) if body is not None else None
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
            try:
                self.conn.request(method, path, data, self.headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
            except (http.client.HTTPException, OSError):
                self.close()             # the server closed a kept-alive connection: once more
                if attempt == 2:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def dashboard_range():
    """Yesterday to tomorrow (UTC): today's writes, whatever the clock does mid-run."""
    today = dt.datetime.now(dt.timezone.utc).date()
    return "startDate=%s&endDate=%s" % (today - dt.timedelta(days=1),
                                        today + dt.timedelta(days=1))


def revenue(api):
    status, body = api.call("GET", "/api/dashboard/stats?" + dashboard_range())
    if status != 200:
        raise BenchError("GET /api/dashboard/stats -> %s: %s" % (status, body))
    return body["revenue"]["value"]


def create_lead(api, name, value=0):
    status, lead = api.call("POST", "/api/leads", {
        "name": "Probe %s" % name, "email": "%s@probe.example" % name.lower(),
        "company": "Probe Co", "source": name, "value": value})
    if status != 201:
        raise BenchError("probe POST /api/leads -> %s: %s" % (status, lead))
    return lead


class LagProbes:
    """The lag probes of one phase, each part on a connection of its own.

    * Creations: a lead with a source of its own every `--probe-interval` s
      (open loop: the probes sample the phase evenly, however late analytics
      is), and one watcher polling the sources chart for all of them.
    * Closes, one at a time (revenue is a sum: two at once could not be told
      apart): a lead with a value, closed, then the stats polled until the
      revenue has grown by that value. Started while within the budget.
    * The backlog every 0.5 s: outbox rows not yet published, events queued.

    A lag runs from the write's answer to the first poll answer showing it
    (so it includes up to one poll round trip); None when not seen within
    `--probe-timeout` s."""

    def __init__(self, ctx, args, phase):
        self.ctx, self.args = ctx, args
        self.tag = "%s-%s" % (ctx["run_tag"], phase)
        self.answered, self.seen, self.closed, self.polls, self.backlog = {}, {}, [], [], []
        self.errors = []
        self.created_all, self.stopped = threading.Event(), threading.Event()

    def run(self, budget):
        self.started = time.perf_counter()
        self.deadline = self.started + budget
        probes = [threading.Thread(target=self._guard, args=(part,), daemon=True)
                  for part in (self._create, self._watch, self._close)]
        sampler = threading.Thread(target=self._guard, args=(self._sample,), daemon=True)
        for thread in probes + [sampler]:
            thread.start()
        for thread in probes:
            thread.join()
        self.stopped.set()
        sampler.join()
        if self.errors:
            raise BenchError("lag probes: %s" % self.errors[0])
        names = sorted(self.answered, key=self.answered.get)
        created = [max(0.0, (self.seen[n] - self.answered[n]) * 1000) if n in self.seen else None
                   for n in names]
        return {"created": created, "closed": self.closed,
                "poll_ms_p50": percentile(self.polls, 50),
                "max_outbox": max((b["outbox"] for b in self.backlog), default=None),
                "max_queued": max((b["queued"] for b in self.backlog), default=None),
                "backlog": self.backlog}

    def _guard(self, part):
        try:
            part()
        except Exception as exc:          # reported by run(); the other parts stop
            self.errors.append(exc)
            self.stopped.set()

    def _api(self):
        return Api(self.ctx["stack"].url, self.ctx["key"])

    def _create(self):
        api = self._api()
        try:
            for i in range(self.args.probes):
                pause = self.started + i * self.args.probe_interval - time.perf_counter()
                if self.stopped.wait(max(0.0, pause)):
                    return
                name = "P-%s-%d" % (self.tag, i)
                create_lead(api, name)
                self.answered[name] = time.perf_counter()
        finally:
            api.close()
            self.created_all.set()

    def _watch(self):
        api = self._api()
        path = "/api/dashboard/charts/sources?" + dashboard_range()
        try:
            while not self.stopped.is_set():
                sent = time.perf_counter()
                status, points = api.call("GET", path)
                now = time.perf_counter()
                self.polls.append((now - sent) * 1000)
                if status != 200:
                    raise BenchError("GET %s -> %s: %s" % (path, status, points))
                for point in points:
                    if point["value"] >= 1 and point["name"] not in self.seen:
                        self.seen[point["name"]] = now
                waiting = [n for n, t in list(self.answered.items())
                           if n not in self.seen and now - t < self.args.probe_timeout]
                if self.created_all.is_set() and not waiting:
                    return
                time.sleep(POLL_SECONDS)
        finally:
            api.close()

    def _close(self):
        api = self._api()
        try:
            for i in range(self.args.probes):
                if self.stopped.is_set() or time.perf_counter() > self.deadline:
                    return
                value = 1000 + i
                before = revenue(api)
                lead = create_lead(api, "C-%s-%d" % (self.tag, i), value)
                status, body = api.call("PATCH", "/api/leads/%s" % lead["id"],
                                        {"status": "closed"})
                if status != 200:
                    raise BenchError("probe PATCH /api/leads/%s -> %s: %s"
                                     % (lead["id"], status, body))
                answered = time.perf_counter()
                while True:
                    grown = revenue(api) >= before + value - 0.005
                    now = time.perf_counter()
                    if grown or now - answered > self.args.probe_timeout:
                        break
                    time.sleep(POLL_SECONDS)
                self.closed.append((now - answered) * 1000 if grown else None)
        finally:
            api.close()

    def _sample(self):
        db, queues = self.ctx["db"], self.ctx["queues"]
        with Connection(self.ctx["amqp"], connect_timeout=5) as conn:
            channel = conn.channel()
            while True:
                self.backlog.append({
                    "t": round(time.perf_counter() - self.started, 2),
                    "outbox": db.outbox_rows(),
                    "queued": sum(channel.queue_declare(n, passive=True).message_count
                                  for n in queues)})
                if self.stopped.wait(0.5):
                    return


def percentile(values, q):
    """Nearest rank; a probe that timed out counts as infinitely late."""
    ranked = sorted(math.inf if v is None else v for v in values)
    if not ranked:
        return None
    return ranked[max(0, math.ceil(q / 100.0 * len(ranked)) - 1)]


# -- one case: wrk on both sides ---------------------------------------------------------
@contextlib.contextmanager
def baseline_server(ctx):
    """The baseline, running only while it is used: its idle pool keeps up to
    one PostgreSQL connection per wrk connection, which the stack needs (of
    max_connections 100) while it is measured."""
    ctx["direct"] = rp.start_direct(ctx["direct_env"], ctx["direct_port"], ctx["server"],
                                    ctx["direct_log"])
    try:
        try:
            rp.wait_ready(ctx["direct"], ctx["direct_base"] + "/api/leads?limit=1")
        except BenchError as exc:
            raise BenchError("%s [this benchmark's: bench/results/write_path_direct.log]" % exc)
        yield ctx["direct_base"]
    finally:
        rp.stop_process(ctx["direct"])


def measure_side(ctx, args, side, base, mode):
    """A warm-up and a measured wrk run of `mode` on one side, plus the check
    that the database holds what the 2xx answers say."""
    db = ctx["db"]
    url = base + "/api/leads"

    def one_run(seconds):
        if mode == "patch":
            db.reset_pool()
        before, cpu = db.writes(), cpu_snapshot()
        result = WrkRun(ctx["wrk"], url, ctx["key"], seconds, args.connections,
                        script_args(mode, ctx["pool_file"])).result()
        result["cpu_cores"] = cpu_cores(cpu, cpu_snapshot())
        time.sleep(SETTLE_SECONDS)
        after = db.writes()
        result["written"] = after[0] - before[0] if mode == "post" else after[1] - before[1]
        return result

    one_run(rp.WARMUP_SECONDS)
    result = one_run(args.duration)
    ok = sum(n for code, n in result["statuses"].items() if code.startswith("2"))
    result["answered_2xx"] = ok
    flags = status_flags(side, result)
    # Requests in flight when wrk stops are written but not counted: up to one per connection.
    if not ok <= result["written"] <= ok + args.connections:
        flags.append("%s: %d x 2xx but %d %s written" % (
            side, ok, result["written"], "leads" if mode == "post" else "status changes"))
    return result, flags


def measure_case(ctx, args, mode):
    say("%s: wrk on the baseline, then the gateway (%d s warm-up + %d s each)"
        % (mode.upper(), rp.WARMUP_SECONDS, args.duration))
    with baseline_server(ctx) as base:
        baseline, flags = measure_side(ctx, args, "baseline", base, mode)
    ours, more = measure_side(ctx, args, "ours", ctx["stack"].url, mode)
    drained = wait_drained(ctx["db"], ctx["amqp"], ctx["queues"])
    say("%s: the events of the gateway's run were consumed %.1f s after it ended"
        % (mode.upper(), drained + SETTLE_SECONDS))
    return {"mode": mode, "baseline": baseline, "ours": ours, "flags": flags + more,
            "drain_s": drained + SETTLE_SECONDS}


def lag_under_load(ctx, args, mode):
    """The probes while wrk runs `mode` on the gateway (stopped once they are done)."""
    if mode == "patch":
        ctx["db"].reset_pool()
    # Long enough for the probes, whatever happens; stopped when they are done.
    seconds = int(3 + args.lag_budget + args.probes * args.probe_interval
                  + 2 * args.probe_timeout + 10)
    load = WrkRun(ctx["wrk"], ctx["stack"].url + "/api/leads", ctx["key"], seconds,
                  args.connections, script_args(mode, ctx["pool_file"]))
    ctx["running"].append(load)
    try:
        time.sleep(2)                 # the load first
        lags = LagProbes(ctx, args, mode).run(args.lag_budget)
    finally:
        load.stop()
    result = load.result()
    drained = wait_drained(ctx["db"], ctx["amqp"], ctx["queues"])
    return {"lags": lags, "load": result, "flags": status_flags("load", result),
            "drain_s": drained}


# -- report ------------------------------------------------------------------------------
def table_rows(cases, lags):
    rows = []
    for case in cases:
        name = {"post": "POST /api/leads", "patch": "PATCH /api/leads/{id} status"}[case["mode"]]
        b, o = case["baseline"], case["ours"]
        for key, label, unit in (("rps", "req/s", "req/s"), ("p50_ms", "p50", "ms"),
                                 ("p99_ms", "p99", "ms")):
            rows.append({"what": "%s %s" % (name, label), "unit": unit, "baseline": b[key],
                         "ours": o[key], "ratio": o[key] / b[key] if b[key] and o[key] else None,
                         "aim": None, "verdict": None, "flags": case["flags"]})
        cpu = [m["cpu_cores"]["machine busy"] * 1000 / m["rps"] if m["rps"] else None
               for m in (b, o)]
        rows.append({"what": "%s CPU ms/request (machine)" % name, "unit": "ms",
                     "baseline": cpu[0], "ours": cpu[1],
                     "ratio": cpu[1] / cpu[0] if cpu[0] and cpu[1] else None, "aim": None,
                     "verdict": None, "flags": []})
        rows.append({"what": "%s: events consumed after the load (s)" % name, "unit": "s",
                     "baseline": None, "ours": case["drain_s"], "ratio": None, "aim": None,
                     "verdict": None, "flags": []})
    for kind, label in (("created", "lag create -> sources chart"),
                        ("closed", "lag close -> stats revenue")):
        for phase, found in lags.items():
            values = found["lags"][kind]
            flags = list(found.get("flags", []))
            timeouts = sum(v is None for v in values)
            if not values:
                flags.append("no probe ran")
            elif timeouts:
                flags.append("%d of %d probes not seen in time" % (timeouts, len(values)))
            for q in (50, 99):
                ms = percentile(values, q)
                aimed = q == 99 and bool(values)
                rows.append({
                    "what": "%s, %s p%d (n=%d)" % (label, phase, q, len(values)), "unit": "ms",
                    "baseline": None, "ours": ms, "ratio": None,
                    "aim": "< %d ms" % AIM_LAG_P99_MS if q == 99 else None,
                    "verdict": (("meets" if ms is not None and ms < AIM_LAG_P99_MS else "misses")
                                if aimed else None),
                    "flags": flags})
    return rows


def show(value, unit):
    if value is None:
        return "-"
    if value == math.inf:
        return "timeout"
    return fmt(value, "%.1f" if unit != "ms" else "%.2f" if value < 10 else "%.1f")


def print_table(rows):
    head = ("what", "baseline", "ours", "ratio", "aim", "verdict", "flags")
    lines = [head] + [(r["what"], show(r["baseline"], r["unit"]), show(r["ours"], r["unit"]),
                       fmt(r["ratio"], "%.3f"), r["aim"] or "-", r["verdict"] or "-",
                       "; ".join(r["flags"]) or "ok") for r in rows]
    rp.print_aligned("Writes through the gateway (ours) vs direct Falcon+SQLAlchemy on the leads "
                     "database (baseline);\nlatencies and lags in ms; ratio = ours/baseline; "
                     "lags are from the write's answer to the dashboard showing it",
                     lines, right=(1, 2, 3))


def json_safe(rows):
    return [{k: ("timeout" if v == math.inf else v) for k, v in r.items()} for r in rows]


# -- main ------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--probes", type=int, default=50, help="lag probes per phase (50)")
    parser.add_argument("--probe-interval", type=float, default=0.2,
                        help="seconds between two creation probes (0.2)")
    parser.add_argument("--probe-timeout", type=float, default=10.0,
                        help="seconds a probe waits for the dashboard (10)")
    parser.add_argument("--lag-budget", type=int, default=30,
                        help="close probes start within this many seconds of a phase (30)")
    parser.add_argument("--pool", type=int, default=2000,
                        help="leads the PATCH load cycles through (2000)")
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.probes, args.lag_budget) < 1 \
            or min(args.probe_timeout, args.probe_interval) <= 0:
        parser.error("--duration, --connections, --probes, --lag-budget, --probe-interval and "
                     "--probe-timeout must be positive")
    if args.pool < 4 * args.connections:
        parser.error("--pool must be at least 4 x --connections (each wrk thread's share of "
                     "the pool must be longer than its connections)")
    return args


def main(argv=None):
    args = parse_args(argv)
    setup = rp.bench_setup(PREFIX)
    if setup is None:
        return 1
    binary, server_url, vhost, key, env = setup
    server = rp.gateway_server_settings()
    stack_log = os.path.join(RESULTS, "write_path_stack.log")
    open(stack_log, "w").close()      # RunningStack appends; one run per log
    stack = None
    ctx = {"wrk": binary, "key": key, "amqp": vhost, "running": [], "server": server,
           "run_tag": secrets.token_hex(3),
           "direct": None, "direct_log": None,
           "db": LeadsDatabase(with_database(server_url, "%s_leads" % PREFIX))}
    try:
        drop_databases(server_url, PREFIX)
        stack = rp.start_stack(env, stack_log)
        ctx["stack"] = stack
        ctx["pool_file"] = ctx["db"].make_pool(args.pool)
        ctx["queues"], parking = event_queues(vhost)
        if not any(".analytics." in q or "--analytics" in q for q in ctx["queues"]):
            raise BenchError("no analytics queue for the leads events in %s" % ctx["queues"])

        ctx["direct_port"] = free_port()
        ctx["direct_base"] = "http://127.0.0.1:%d" % ctx["direct_port"]
        ctx["direct_env"] = dict(env, BENCH_DB_POOL=str(server["threads"]),
                                 PYTHONPATH=os.pathsep.join([os.path.join(rp.ROOT, "libs"),
                                                             os.path.join(rp.ROOT, "services",
                                                                          "leads"), BENCH]))
        ctx["direct_log"] = open(os.path.join(RESULTS, "write_path_direct.log"), "wb")
        say("baseline on %s (%s, %d workers x %d threads, like the gateway), started for "
            "its runs only" % (ctx["direct_base"], server["worker_class"], server["workers"],
                               server["threads"]))
        with baseline_server(ctx):
            warnings = preflight(ctx)

        say("lag probes, idle (%d + %d)" % (args.probes, args.probes))
        lags = {"idle": {"lags": LagProbes(ctx, args, "idle").run(args.lag_budget)}}

        cases = []
        for mode in ("post", "patch"):
            cases.append(measure_case(ctx, args, mode))
            say("lag probes under the %s load on the gateway" % mode.upper())
            lags["under %s load" % mode.upper()] = lag_under_load(ctx, args, mode)

        parked = queue_depths(vhost, parking)
        if any(parked.values()):
            warnings.append("events parked (failed): %s" % {q: n for q, n in parked.items() if n})
        rows = table_rows(cases, lags)
        print_table(rows)
        print("Backlog while probing (max outbox rows not yet published / leads events queued) "
              "and a dashboard poll's round trip (p50):")
        for phase, found in lags.items():
            lag = found["lags"]
            print("  %-16s outbox %s, queued %s, poll %s ms" % (
                phase + ":", lag["max_outbox"], lag["max_queued"], fmt(lag["poll_ms_p50"])))
        print("CPU during the measured runs (cores of %d; postgres, rabbitmq and wrk are the "
              "machine's):" % os.cpu_count())
        for case in cases:
            for side in ("baseline", "ours"):
                print("  %-5s %-8s %s" % (case["mode"].upper(), side, ", ".join(
                    "%s %.2f" % kv for kv in case[side]["cpu_cores"].items())))
        for w in warnings:
            print("WARNING: %s" % w)
        report = {
            "benchmark": "write_path",
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=rp.ROOT,
                                     capture_output=True, text=True).stdout.strip() or None,
            "settings": {"duration_s": args.duration, "warmup_s": rp.WARMUP_SECONDS,
                         "connections": args.connections, "wrk_threads": WRK_THREADS,
                         "wrk_timeout": WRK_TIMEOUT, "probes": args.probes,
                         "probe_interval_s": args.probe_interval,
                         "probe_timeout_s": args.probe_timeout, "lag_budget_s": args.lag_budget,
                         "poll_s": POLL_SECONDS, "pool": args.pool, "cpus": os.cpu_count(),
                         "server": server, "aim_lag_p99_ms": AIM_LAG_P99_MS},
            "warnings": warnings,
            "table": json_safe(rows),
            "cases": cases,
            "lags": lags,
        }
        out = os.path.join(RESULTS, "write_path.json")
        with open(out, "w") as f:
            json.dump(report, f, indent=2, default=str)
        say("wrote %s" % os.path.relpath(out, rp.ROOT))
        return 0
    except BenchError as exc:
        print("[bench] FAILED: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        # Each step on its own, so one failure does not leave the rest behind.
        rp.clean_up(([lambda run=run: run.kill() for run in ctx["running"]] +
                     [lambda: rp.stop_process(ctx["direct"]),
                      lambda: ctx["direct_log"] and ctx["direct_log"].close(),
                      lambda: stack and stack.stop(),
                      lambda: ctx["db"].close(), lambda: drop_databases(server_url, PREFIX),
                      lambda: rp.drop_vhost(vhost, PREFIX),
                      lambda: os.path.exists(ctx.get("pool_file") or "")
                      and os.remove(ctx["pool_file"])]))


def preflight(ctx):
    """One POST and one PATCH on each side answer 201 / 200 with the same
    fields; raises when one does not answer, returns differences as warnings."""
    pool_id = open(ctx["pool_file"]).readline().strip()
    warnings = []
    for what, method, path, body, expected in (
            ("POST", "POST", "/api/leads", None, 201),
            ("PATCH", "PATCH", "/api/leads/%s" % pool_id, {"status": "contacted"}, 200)):
        answers = []
        for side, base in (("baseline", ctx["direct_base"]), ("ours", ctx["stack"].url)):
            api = Api(base, ctx["key"])
            try:
                sent = body or {"name": "Preflight", "company": "Bench Co",
                                "email": "preflight-%s@bench.example" % secrets.token_hex(4)}
                status, answer = api.call(method, path, sent)
            finally:
                api.close()
            if status != expected:
                raise BenchError("pre-flight %s %s on the %s -> %s: %s"
                                 % (method, path, side, status, answer))
            answers.append(answer)
            if method == "PATCH":
                ctx["db"].reset_pool()
        if set(answers[0]) != set(answers[1]):
            warnings.append("%s: the answers' fields differ: %s" % (
                what, sorted(set(answers[0]) ^ set(answers[1]))))
    return warnings


if __name__ == "__main__":
    sys.exit(main())
