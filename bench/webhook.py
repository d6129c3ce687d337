#!/usr/bin/env python3
"""Webhook benchmark: signed Meta lead-ad deliveries accepted per second by
POST /api/webhooks/meta, and the time from a delivery to its lead being
visible in GET /api/leads, next to a baseline measured in the same run.

Starts a fake Graph API (crm_common.fake_graph, real HTTP) holding one lead
per leadgen id, a fresh stack pointed at it (bin/stack.py, databases
`crm_benchhook_*`, its own vhost and port) and the baseline
(bench/signature_app.py: Falcon checking the signature with the gateway's own
function and answering 200 without queueing, under gunicorn with the
gateway's worker settings). Then:

  * accepted/s: wrk at 32 connections POSTs pre-signed deliveries (one
    leadgen change each; bench/webhook_deliveries.lua cycles through a file
    of bodies and signatures), a warm-up and a measured run on each side;
  * delivery -> visible: a probe outside wrk posts deliveries for fresh
    leadgen ids (a unique email each), one at a time, and polls
    GET /api/leads?search=<email> until the lead is there: during the
    measured run, then again once the load's leads are all visible (idle);
  * backlog: how long after the measured run the last of the load's leads
    became visible (the leads count of their email domain), and when the
    delivery queue had no message left.

    .venv/bin/python bench/webhook.py [--duration 15] [--connections 32]
                                      [--ids 40000] [--probes 50]

Prints a table, writes bench/results/webhook.json. Exit status: 0 when it
measured (misses against the aims are reported, not failed); 1 when the
stack, the baseline, the fake Graph API or wrk could not run. Everything it
started is stopped and its databases and vhost are dropped on the way out.
"""
import argparse
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import read_path as rp  # noqa: E402  (also puts libs/ on sys.path)
from read_path import BenchError, fmt, http_get, say  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from crm_common.config import with_database  # noqa: E402
from crm_common.fake_graph import FakeGraph  # noqa: E402
from crm_common.testing import drop_databases, free_port, queue_depth  # noqa: E402

PREFIX = "crm_benchhook"
RESULTS = rp.RESULTS
LUA = os.path.join(BENCH, "webhook_deliveries.lua")
WRK_THREADS = 2                  # rp.wrk runs `wrk -t2`; the Lua script splits the ids between them
PATH = "/api/webhooks/meta"
# The leads service's queue for the gateway's deliveries (nameko's name for
# LeadsService.receive_lead_ads, declared by crm_common.bootstrap).
DELIVERY_QUEUE = "evt-gateway-meta_leadgen_received--leads.receive_lead_ads"
LOAD_DOMAIN = "hookload.example"     # the load's leads: counted by searching for it
PROBE_DOMAIN = "hookprobe.example"
POLL_SECONDS = 0.01              # a probe's GET /api/leads?search= interval
AIM_ACCEPTED_PER_S = 1000.0
AIM_VISIBLE_P99_MS = 1000.0


# -- deliveries ------------------------------------------------------------------------
def graph_lead(leadgen_id, email, name, created):
    """What the fake Graph API answers for `leadgen_id`."""
    return {"id": leadgen_id, "created_time": created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "form_id": "555", "ad_id": "666", "campaign_id": "777",
            "field_data": [{"name": "full_name", "values": [name]},
                           {"name": "email", "values": [email]},
                           {"name": "company_name", "values": ["Webhook Bench"]}]}


def delivery(leadgen_id, secret, when):
    """(raw body, X-Hub-Signature-256) of a delivery with one leadgen change."""
    raw = json.dumps({"object": "page", "entry": [{"id": "9001", "time": when, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": leadgen_id, "page_id": "9001",
                                       "form_id": "555", "ad_id": "666", "created_time": when}}]}]},
                     separators=(",", ":")).encode()
    return raw, "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def write_deliveries(path, graph, secret, count, first_id, run_tag):
    """`count` deliveries for fresh leadgen ids, each held by the fake Graph
    API with a unique email at LOAD_DOMAIN, one per line for the Lua script."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    when = int(now.timestamp())
    with open(path, "w") as f:
        for i in range(count):
            lid = str(first_id + i)
            graph.leads[lid] = graph_lead(lid, "load.%d.%s@%s" % (i, run_tag, LOAD_DOMAIN),
                                          "Load Lead %d" % i, now)
            raw, signature = delivery(lid, secret, when)
            f.write("%s\t%s\n" % (signature, raw.decode()))


def post(url, raw, signature):
    request = urllib.request.Request(url, data=raw, method="POST", headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def preflight(base_url, secret):
    """A signed delivery with no leadgen change answers 200 {"received": 0}
    (nothing is queued) and a forged one 403, on either side."""
    raw = json.dumps({"object": "page", "entry": [{"id": "9001", "time": 0, "changes": [
        {"field": "feed", "value": {"item": "status"}}]}]}).encode()
    signed = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    status, body = post(base_url + PATH, raw, signed)
    if status != 200 or json.loads(body) != {"received": 0}:
        raise BenchError("pre-flight: %s%s answered %s %r to a signed delivery"
                         % (base_url, PATH, status, body[:300]))
    status, _ = post(base_url + PATH, raw, "sha256=" + "0" * 64)
    if status != 403:
        raise BenchError("pre-flight: %s%s answered %s to a forged signature (expected 403)"
                         % (base_url, PATH, status))


# -- wrk -----------------------------------------------------------------------------------
def load(binary, url, seconds, connections, deliveries_file):
    """One wrk run of the Lua script: (parsed figures, {thread: (sent, size)})."""
    text = rp.wrk(binary, url, None, seconds, connections, script=LUA,
                  script_args=(deliveries_file, WRK_THREADS))
    result = rp.parse_wrk(text)
    threads = {int(t): (int(sent), int(size)) for t, sent, size in
               re.findall(r"^webhook-lua: thread (\d+) sent (\d+) of (\d+)$", text, re.M)}
    if len(threads) != WRK_THREADS:
        raise BenchError("the Lua script did not report its %d threads:\n%s" % (WRK_THREADS, text))
    result.update(url=url, wrk_output=text)
    return result, threads


def distinct_posted(*runs):
    """How many distinct leadgen ids some runs posted (each run starts every
    thread at the first of its share of the ids)."""
    return sum(min(max(run[t][0] for run in runs), runs[0][t][1]) for t in runs[0])


# -- probes ---------------------------------------------------------------------------------
class Prober:
    """Posts a delivery for a fresh leadgen id (its lead put in the fake Graph
    API first, with a unique email) and times it until
    GET /api/leads?search=<email> returns the lead."""

    def __init__(self, stack_url, key, secret, graph, first_id, run_tag, timeout):
        self.stack_url, self.key, self.secret, self.graph = stack_url, key, secret, graph
        self.next_id = first_id
        self.run_tag = run_tag
        self.timeout = timeout

    def post(self):
        """Post one probe delivery; its record (`ms` None until visible)."""
        lid = str(self.next_id)
        self.next_id += 1
        email = "probe.%s.%s@%s" % (lid, self.run_tag, PROBE_DOMAIN)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self.graph.leads[lid] = graph_lead(lid, email, "Probe %s" % lid, now)
        raw, signature = delivery(lid, self.secret, int(now.timestamp()))
        record = {"leadgen_id": lid, "email": email, "started": time.monotonic(), "ms": None}
        try:
            record["status"], _ = post(self.stack_url + PATH, raw, signature)
        except OSError as exc:
            record["status"] = repr(exc)
        record["accepted_ms"] = (time.monotonic() - record["started"]) * 1000
        return record

    def visible(self, record):
        """Whether the probe's lead is listed now (then its `ms` is set)."""
        try:
            status, _, body = http_get(self.stack_url + "/api/leads?search="
                                       + urllib.parse.quote(record["email"]), self.key)
        except OSError:
            return False
        if status == 200 and json.loads(body):
            record["ms"] = (time.monotonic() - record["started"]) * 1000
            return True
        return False

    def pending(self, record):
        """Still worth polling: accepted, not yet seen, within the timeout."""
        return (record["status"] == 200 and record["ms"] is None
                and time.monotonic() - record["started"] < self.timeout)

    def probe(self):
        """One probe, polled until its lead is visible (or the timeout)."""
        record = self.post()
        while self.pending(record) and not self.visible(record):
            time.sleep(POLL_SECONDS)
        return record


class ProbesDuringLoad:
    """Probes posted one at a time, `count` of them spread over `seconds`
    (none after `finished` is set), while a watcher polls for the oldest
    probe not yet visible. The leads service works through its queue in
    order, so a probe rarely shows up before an older one; when it does, it
    is counted when the watcher gets to it (a little late, never early)."""

    def __init__(self, prober, count, seconds):
        self.prober, self.count, self.seconds = prober, count, seconds
        self.finished = threading.Event()
        self.abandoned = threading.Event()      # stop watching too (the run failed)
        self.records = []
        self._posted_all = threading.Event()
        self._threads = [threading.Thread(target=self._post, daemon=True),
                         threading.Thread(target=self._watch, daemon=True)]

    def start(self):
        for thread in self._threads:
            thread.start()

    def join(self, timeout):
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _post(self):
        try:
            started = time.monotonic()
            for k in range(self.count):
                due = started + k * self.seconds / self.count
                if self.finished.wait(max(0.0, due - time.monotonic())):
                    return
                self.records.append(self.prober.post())
        finally:
            self._posted_all.set()

    def _watch(self):
        oldest = 0
        while not self.abandoned.is_set():
            if oldest < len(self.records):
                record = self.records[oldest]
                if not self.prober.pending(record) or self.prober.visible(record):
                    oldest += 1
                    continue
            elif self._posted_all.is_set():
                return
            time.sleep(POLL_SECONDS)


def percentile(values, p):
    """Nearest-rank percentile; a probe that never saw its lead (None) ranks
    last, and comes out as None."""
    if not values:
        return None
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    return ranked[max(0, math.ceil(p / 100.0 * len(ranked)) - 1)]


def probe_summary(records):
    times = [r["ms"] for r in records]
    return {"n": len(records), "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
            "max_ms": percentile(times, 100), "not_visible": sum(t is None for t in times),
            "probes": [{k: v for k, v in r.items() if k != "started"} for r in records]}


# -- backlog ------------------------------------------------------------------------------
def load_leads(stack_url, key):
    """How many of the load's leads GET /api/leads shows (None: no answer)."""
    try:
        status, headers, _ = http_get(stack_url + "/api/leads?limit=1&search=" + LOAD_DOMAIN, key)
    except OSError:
        return None
    return int(headers.get("X-Total-Count")) if status == 200 else None


def vhost_messages(amqp_uri):
    """{queue: messages ready or being handled} of the vhost (rabbitmqctl);
    just the delivery queue's ready ones (a passive declare) where
    rabbitmqctl is missing."""
    if not shutil.which("rabbitmqctl"):
        return {DELIVERY_QUEUE: queue_depth(amqp_uri, DELIVERY_QUEUE)}
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(amqp_uri).path[1:]) or "/"
    out = subprocess.run(["rabbitmqctl", "list_queues", "-q", "-p", vhost, "--no-table-headers",
                          "name", "messages"], capture_output=True, text=True)
    found = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            found[parts[0]] = int(parts[1])
    return found


def wait_quiet(amqp_uri, since, timeout):
    """Until no queue of the vhost holds a message (the events of the load's
    leads consumed, e.g. by analytics): seconds after `since`, None when not
    within `timeout` of it."""
    while time.monotonic() - since < timeout:
        if not any(vhost_messages(amqp_uri).values()):
            return time.monotonic() - since
        time.sleep(1)
    return None


def load_submissions(server_url, first_id, count):
    """The load's lead_ad_submissions per status, from the leads database
    (leadgen ids are 15-digit strings, so they compare as numbers)."""
    engine = sa.create_engine(with_database(server_url, "%s_leads" % PREFIX),
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text(
                "SELECT status, count(*) FROM lead_ad_submissions WHERE leadgen_id >= :lo "
                "AND leadgen_id < :hi GROUP BY status"),
                {"lo": str(first_id), "hi": str(first_id + count)}).all())
    finally:
        engine.dispose()


def wait_backlog(stack_url, key, amqp_uri, server_url, first_id, ids, load_end, timeout):
    """After the load (`load_end`): when the delivery queue had nothing left
    waiting (at most the consumer's prefetch still being handled), and when
    the last of the load's leads became visible. Which leads those are is
    known once the queue is empty, handled messages included, and no
    submission is pending: those `done` (the gateway accepted a delivery for
    each; wrk's last requests may or may not have gone out). Seconds after
    `load_end`, None when not within `timeout`."""
    history, drained_s, empty, states = [], None, False, {}
    while time.monotonic() - load_end < timeout:
        count = load_leads(stack_url, key)
        now = time.monotonic() - load_end
        if count is not None:
            history.append((now, count))
        if drained_s is None and queue_depth(amqp_uri, DELIVERY_QUEUE) == 0:
            drained_s = time.monotonic() - load_end
        if drained_s is not None and not empty:       # rabbitmqctl is slow: only now
            empty = vhost_messages(amqp_uri).get(DELIVERY_QUEUE) == 0
        if empty:
            states = load_submissions(server_url, first_id, ids)
            if not states.get("pending") and count is not None and count >= states.get("done", 0):
                break
        time.sleep(0.2)
    target = states.get("done") if empty and not states.get("pending") else None
    visible_s = next((t for t, c in history if c >= target), None) if target else None
    return {"leads": target, "submissions": states, "timeout_s": timeout,
            "visible_at_load_end": history[0][1] if history else None,
            "visible_last": history[-1][1] if history else None,
            "all_visible_after_s": visible_s, "queue_drained_after_s": drained_s}


def submission_states(server_url):
    """Every lead_ad_submission (load and probes) per status."""
    engine = sa.create_engine(with_database(server_url, "%s_leads" % PREFIX),
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text(
                "SELECT status, count(*) FROM lead_ad_submissions GROUP BY status")).all())
    finally:
        engine.dispose()


# -- report -------------------------------------------------------------------------------
def verdict(ok):
    return "-" if ok is None else ("ok" if ok else "MISS")


def build_rows(baseline, ours, during, idle, backlog):
    def errors(m):
        return m["non_2xx"] + m["socket_errors"]

    rows = [
        {"what": "deliveries accepted/s", "baseline": fmt(baseline["rps"]),
         "ours": fmt(ours["rps"]), "ratio": ours["rps"] / baseline["rps"] if baseline["rps"] else None,
         "aim": ">= %d/s" % AIM_ACCEPTED_PER_S, "verdict": verdict(ours["rps"] >= AIM_ACCEPTED_PER_S)},
        {"what": "answer p50 (ms)", "baseline": fmt(baseline["p50_ms"], "%.2f"),
         "ours": fmt(ours["p50_ms"], "%.2f"), "ratio": ratio(ours["p50_ms"], baseline["p50_ms"]),
         "aim": "-", "verdict": "-"},
        {"what": "answer p99 (ms)", "baseline": fmt(baseline["p99_ms"], "%.2f"),
         "ours": fmt(ours["p99_ms"], "%.2f"), "ratio": ratio(ours["p99_ms"], baseline["p99_ms"]),
         "aim": "-", "verdict": "-"},
        {"what": "non-2xx + socket errors", "baseline": "%d / %d" % (errors(baseline),
                                                                     baseline["requests"] or 0),
         "ours": "%d / %d" % (errors(ours), ours["requests"] or 0), "ratio": None, "aim": "0",
         "verdict": verdict(errors(ours) == 0)},
    ]
    for label, s in (("during load", during), ("idle", idle)):
        missing = " (%d not visible)" % s["not_visible"] if s["not_visible"] else ""
        rows.append({"what": "delivery -> visible p50 (ms), %s, n=%d" % (label, s["n"]),
                     "baseline": "-", "ours": ms_cell(s["p50_ms"], s["n"]), "ratio": None,
                     "aim": "-", "verdict": "-"})
        rows.append({"what": "delivery -> visible p99 (ms), %s" % label, "baseline": "-",
                     "ours": ms_cell(s["p99_ms"], s["n"]) + missing, "ratio": None,
                     "aim": "< %d" % AIM_VISIBLE_P99_MS,
                     "verdict": verdict(s["n"] > 0 and s["p99_ms"] is not None
                                        and s["p99_ms"] < AIM_VISIBLE_P99_MS)})
    all_visible = backlog["all_visible_after_s"]
    rows.append({"what": "last load lead visible, s after load (%s leads)"
                 % (backlog["leads"] if backlog["leads"] is not None else "?"),
                 "baseline": "-",
                 "ours": fmt(all_visible) if all_visible is not None else
                 "> %d (%s visible)" % (backlog["timeout_s"], backlog["visible_last"]),
                 "ratio": None, "aim": "-", "verdict": "-"})
    rate = ((backlog["leads"] - backlog["visible_at_load_end"]) / all_visible
            if all_visible and backlog["visible_at_load_end"] is not None else None)
    rows.append({"what": "leads made/s after the load (the queue's drain rate)", "baseline": "-",
                 "ours": fmt(rate), "ratio": None, "aim": "-", "verdict": "-"})
    drained = backlog["queue_drained_after_s"]
    rows.append({"what": "delivery queue: none waiting, s after load", "baseline": "-",
                 "ours": fmt(drained) if drained is not None else "> %d" % backlog["timeout_s"],
                 "ratio": None, "aim": "-", "verdict": "-"})
    quiet = backlog.get("quiet_after_s")
    rows.append({"what": "every queue empty (events consumed), s after load", "baseline": "-",
                 "ours": fmt(quiet) if quiet is not None else "> %d" % backlog["timeout_s"],
                 "ratio": None, "aim": "-", "verdict": "-"})
    return rows


def ratio(a, b):
    return a / b if a is not None and b else None


def ms_cell(value, n):
    if not n:
        return "no probe"
    return "not visible" if value is None else "%.0f" % value


def print_table(rows, title):
    head = ("what", "baseline", "ours", "ratio", "aim", "verdict")
    lines = [head] + [(r["what"], r["baseline"], r["ours"], fmt(r["ratio"], "%.3f"), r["aim"],
                       r["verdict"]) for r in rows]
    rp.print_aligned(title, lines, right=(1, 2, 3))


# -- main ----------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--ids", type=int, default=40_000,
                        help="distinct leadgen ids the load cycles through (40000: more than "
                             "the default run posts at 2,000/s, so each delivery makes a lead)")
    parser.add_argument("--probes", type=int, default=50,
                        help="probes during the load (at most) and once idle (50)")
    parser.add_argument("--visible-timeout", type=int, default=600,
                        help="seconds to wait for the load's leads after the load, and for one "
                             "probe's lead (600)")
    args = parser.parse_args(argv)
    if args.duration < 2 or args.connections < 1 or args.ids < 2 * WRK_THREADS or args.probes < 1:
        parser.error("--duration >= 2, --connections and --probes >= 1, --ids >= %d"
                     % (2 * WRK_THREADS))
    return args


def main(argv=None):
    args = parse_args(argv)
    setup = rp.bench_setup(PREFIX)
    if setup is None:
        return 1
    binary, server_url, vhost, key, env = setup
    secret = secrets.token_hex(16)
    run_tag = secrets.token_hex(4)
    first_id = 10 ** 14 + secrets.randbelow(10 ** 14)      # 15-digit ids, like Meta's
    server = rp.gateway_server_settings()
    stack_log = os.path.join(RESULTS, "webhook_stack.log")
    open(stack_log, "w").close()      # RunningStack appends; one run per log
    graph = stack = baseline = baseline_log = workdir = during = None
    try:
        graph = FakeGraph(token=secrets.token_hex(8))
        env.update(META_GRAPH_URL=graph.url, META_ACCESS_TOKEN=graph.token,
                   META_APP_SECRET=secret, META_VERIFY_TOKEN=secrets.token_hex(8))
        workdir = tempfile.mkdtemp(prefix="bench-webhook-")
        deliveries_file = os.path.join(workdir, "deliveries.tsv")
        write_deliveries(deliveries_file, graph, secret, args.ids, first_id, run_tag)
        say("%d signed deliveries written, their leads in the fake Graph API at %s"
            % (args.ids, graph.url))

        drop_databases(server_url, PREFIX)
        stack = rp.start_stack(env, stack_log)

        baseline_port = free_port()
        baseline_env = dict(env, PYTHONPATH=os.pathsep.join(
            [os.path.join(rp.ROOT, "libs"), os.path.join(rp.ROOT, "services", "gateway"), BENCH]))
        baseline_log = open(os.path.join(RESULTS, "webhook_baseline.log"), "wb")
        baseline = rp.start_direct(baseline_env, baseline_port, server, baseline_log,
                                   app="signature_app:app")
        baseline_url = "http://127.0.0.1:%d" % baseline_port
        rp.wait_ready(baseline, baseline_url + "/api/health")
        say("baseline on %s (%s, %d workers x %d threads, like the gateway)"
            % (baseline_url, server["worker_class"], server["workers"], server["threads"]))
        preflight(baseline_url, secret)
        preflight(stack.url, secret)

        say("wrk baseline (%d s warm-up + %d s)" % (rp.WARMUP_SECONDS, args.duration))
        load(binary, baseline_url + PATH, rp.WARMUP_SECONDS, args.connections, deliveries_file)
        base, _ = load(binary, baseline_url + PATH, args.duration, args.connections,
                       deliveries_file)

        say("wrk gateway (%d s warm-up + %d s), probing delivery -> visible meanwhile"
            % (rp.WARMUP_SECONDS, args.duration))
        prober = Prober(stack.url, key, secret, graph, first_id + args.ids, run_tag,
                        args.visible_timeout)
        _, warm_threads = load(binary, stack.url + PATH, rp.WARMUP_SECONDS, args.connections,
                               deliveries_file)
        during = ProbesDuringLoad(prober, args.probes, args.duration)
        during.start()
        try:
            ours, main_threads = load(binary, stack.url + PATH, args.duration, args.connections,
                                      deliveries_file)
        finally:
            during.finished.set()
        load_end = time.monotonic()
        posted = distinct_posted(warm_threads, main_threads)
        cycled = any(sent > size for sent, size in main_threads.values())
        if cycled:
            print("WARNING: the load went through all %d ids and posted some again (their "
                  "deliveries made no lead); --ids more to avoid that" % args.ids)
        say("waiting for the load's ~%d leads to be visible (at most %d s)"
            % (posted, args.visible_timeout))
        backlog = wait_backlog(stack.url, key, env["AMQP_URI"], server_url, first_id, args.ids,
                               load_end, args.visible_timeout)
        backlog.update(ids_posted_per_wrk=posted, ids_cycled=cycled)
        during.join(args.visible_timeout + 15)
        say("last load lead visible %s s after the load; waiting for every queue to be "
            "empty, then probing once idle" % fmt(backlog["all_visible_after_s"]))
        backlog["quiet_after_s"] = wait_quiet(env["AMQP_URI"], load_end, args.visible_timeout)
        if backlog["quiet_after_s"] is None:
            print("WARNING: the stack's queues still hold messages; probing anyway")
        time.sleep(2)
        idle = []
        for _ in range(args.probes):
            idle.append(prober.probe())
            if idle[-1]["ms"] is None:
                break               # not visible within the timeout: the rest would not be either
        states = submission_states(server_url)

        during_s, idle_s = probe_summary(during.records), probe_summary(idle)
        rows = build_rows(base, ours, during_s, idle_s, backlog)
        print_table(rows, "POST %s: the gateway (ours) vs a signature-check-only Falcon app "
                          "(baseline); ratio = ours/baseline" % PATH)
        print("lead_ad_submissions by status: %s; Graph fetches served: %d"
              % (", ".join("%s=%d" % kv for kv in sorted(states.items())) or "none",
                 len(graph.requests)))
        if states.get("failed") or states.get("pending"):
            print("WARNING: not every submission is done (see webhook_stack.log)")
        report = {
            "benchmark": "webhook",
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=rp.ROOT,
                                     capture_output=True, text=True).stdout.strip() or None,
            "settings": {"duration_s": args.duration, "warmup_s": rp.WARMUP_SECONDS,
                         "connections": args.connections, "wrk_threads": WRK_THREADS,
                         "ids": args.ids, "probes": args.probes,
                         "visible_timeout_s": args.visible_timeout,
                         "probe_poll_s": POLL_SECONDS, "cpus": os.cpu_count(), "server": server,
                         "aims": {"accepted_per_s_min": AIM_ACCEPTED_PER_S,
                                  "visible_p99_ms_max": AIM_VISIBLE_P99_MS}},
            "table": rows,
            "baseline": base,
            "ours": dict(ours, threads=main_threads, warmup_threads=warm_threads),
            "probes_during_load": during_s,
            "probes_idle": idle_s,
            "backlog": backlog,
            "submissions": states,
            "graph_fetches": len(graph.requests),
        }
        out = os.path.join(RESULTS, "webhook.json")
        with open(out, "w") as f:
            json.dump(report, f, indent=2)
        say("wrote %s" % os.path.relpath(out, rp.ROOT))
        return 0
    except (BenchError, sa.exc.SQLAlchemyError) as exc:
        print("[bench] FAILED: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        rp.clean_up((lambda: during and (during.finished.set(), during.abandoned.set()),
                     lambda: rp.stop_process(baseline),
                     lambda: baseline_log and baseline_log.close(),
                     lambda: stack and stack.stop(), lambda: graph and graph.stop(),
                     lambda: drop_databases(server_url, PREFIX),
                     lambda: rp.drop_vhost(vhost, PREFIX),
                     lambda: workdir and shutil.rmtree(workdir, ignore_errors=True)))


if __name__ == "__main__":
    sys.exit(main())
