#!/usr/bin/env python3
"""Read-path benchmark: GET /api/leads?limit=50 (and friends) through the
gateway, next to a baseline measured in the same run.

Starts a fresh stack (bin/stack.py, databases `crm_bench_*`, its own vhost and
port), seeds N leads straight into its leads database, starts the baseline
(bench/direct_app.py: Falcon + SQLAlchemy on the same database, under gunicorn
with the gateway's worker settings), loads both with wrk at 32 connections,
prints a table and writes bench/results/read_path.json. Stops everything it
started and drops its databases on the way out.

    .venv/bin/python bench/read_path.py [--leads 10000] [--duration 15]

Exit status: 0 when it measured (poor ratios or non-2xx responses are
reported, not failed); 1 when the stack, the baseline or wrk could not run.
On a 2-core machine wrk shares the CPU with the servers, which is why the
ratio against the same-run baseline is the figure to read, not req/s alone.
"""
import argparse
import csv
import datetime as dt
import io
import json
import os
import random
import re
import runpy
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "libs"))

import sqlalchemy as sa  # noqa: E402

from crm_common.config import with_database  # noqa: E402
from crm_common.testing import (RunningStack, delete_vhost, drop_databases, free_port,  # noqa: E402
                                 vhost_uri)

PREFIX = "crm_bench"
RESULTS = os.path.join(ROOT, "bench", "results")
GATEWAY_CONF = os.path.join(ROOT, "services", "gateway", "gunicorn.conf.py")
STATUSES = ("new", "contacted", "qualified", "proposal", "closed")
# Only the company of every 100th seeded lead contains this, so a search for
# it matches 1% of the rows.
SEARCH_TERM = "zephyr"
WARMUP_SECONDS = 3


class BenchError(Exception):
    """Something the benchmark needs could not run (exit status 1)."""


def say(message):
    print("[bench] %s" % message, flush=True)


def die_with_parent():
    """In a child: SIGTERM when the benchmark dies (Linux), so nothing outlives it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# -- seeding ------------------------------------------------------------------------
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Kira", "Liam", "Maya", "Noor", "Oscar", "Priya", "Quinn", "Rosa", "Sven", "Tara")
LAST = ("Almeida", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
        "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Silva")
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Stark Industries", "Wayne Co",
             "Hooli", "Vandelay Imports", "Soylent", "Tyrell Systems", None)
TITLES = ("CEO", "CTO", "Head of Sales", "Marketing Manager", "Engineer", "Buyer", None)
SOURCES = ("Manual", "Website", "Referral", "Meta Ads", "Trade Show", "Cold Call")
COLUMNS = ("id", "name", "email", "phone", "company", "job_title", "status", "source", "score",
           "value", "owner_id", "created_at", "updated_at", "last_interaction_at")


def lead_rows(count, rng):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = "Zephyr Analytics" if i % 100 == 0 else rng.choice(COMPANIES)
        created = now - dt.timedelta(seconds=i * 613 + rng.randrange(600))
        touched = (created + dt.timedelta(hours=rng.randrange(1, 500))
                   if rng.random() < 0.6 else None)
        yield (uuid.UUID(int=rng.getrandbits(128), version=4), "%s %s" % (first, last),
               "%s.%s.%06d@example.com" % (first.lower(), last.lower(), i),
               "+1 555 %07d" % rng.randrange(10 ** 7) if rng.random() < 0.7 else None,
               company, rng.choice(TITLES), STATUSES[i % len(STATUSES)], rng.choice(SOURCES),
               rng.randint(0, 100), "%.2f" % (rng.randrange(0, 5_000_000) / 100),
               "user-%d" % rng.randrange(5) if rng.random() < 0.5 else None,
               created.isoformat(), created.isoformat(), touched.isoformat() if touched else None)


def seed(database_url, count):
    """COPY `count` leads into the (empty) leads table; returns one lead's id."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    ids = []
    for row in lead_rows(count, random.Random(20240601)):
        ids.append(str(row[0]))
        writer.writerow(row)      # None -> empty unquoted field -> NULL in CSV COPY
    buf.seek(0)
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.copy_expert("COPY leads (%s) FROM STDIN WITH (FORMAT csv)" % ", ".join(COLUMNS),
                                buf)
            raw.commit()
        finally:
            raw.close()
        # VACUUM too: fresh visibility map and stats now, so autovacuum does
        # not kick in halfway through a measurement.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE leads"))
    finally:
        engine.dispose()
    return ids[len(ids) // 2]


# -- the baseline server ---------------------------------------------------------------
def gateway_server_settings():
    """The gateway's gunicorn settings (with this environment's overrides), so
    the baseline gets the same worker class, workers and threads."""
    conf = runpy.run_path(GATEWAY_CONF)
    return {k: conf[k] for k in ("worker_class", "workers", "threads", "keepalive", "timeout",
                                 "graceful_timeout")}


def start_direct(env, port, server, log_file, app="direct_app:app"):
    """`app` (a module in bench/) under gunicorn with the gateway's `server` settings."""
    argv = [sys.executable, "-m", "gunicorn", app,
            "--bind", "127.0.0.1:%d" % port, "--worker-class", server["worker_class"],
            "--workers", str(server["workers"]), "--threads", str(server["threads"]),
            "--keep-alive", str(server["keepalive"]), "--timeout", str(server["timeout"]),
            "--graceful-timeout", str(server["graceful_timeout"]),
            # gunicorn >= 25.1 opens ~/.gunicorn/gunicorn.ctl by default; leave
            # that path to the gateway rather than take it over.
            "--no-control-socket"]
    return subprocess.Popen(argv, cwd=os.path.join(ROOT, "bench"), env=env, stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)


def wait_ready(proc, url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise BenchError("the baseline server exited with %s (log: bench/results/direct.log)"
                             % proc.returncode)
        try:
            if http_get(url)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise BenchError("the baseline server is not answering after %d s" % timeout)


def stop_process(proc, timeout=20):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- CPU accounting ---------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid):
    """(command name, CPU seconds used so far: utime + stime) of `pid`, from
    /proc/<pid>/stat; OSError when it is gone."""
    with open("/proc/%s/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (stat[stat.index("(") + 1:stat.rindex(")")],
            (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)


def machine_busy():
    """CPU seconds the machine's cores have been busy (not idle, not waiting
    for I/O) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return (sum(cpu) - cpu[3] - cpu[4]) / CLOCK_TICKS


def start_stack(env, stack_log):
    """A fresh stack (bin/stack.py) with `env`, its log in `stack_log`;
    BenchError when it does not become healthy."""
    say("starting the stack (log: %s)" % os.path.relpath(stack_log, ROOT))
    stack = RunningStack(env, sys.executable, log_path=stack_log)
    try:
        return stack.start()
    except RuntimeError as exc:
        raise BenchError("the stack did not start: %s" % exc)


def clean_up(steps):
    """Each step in turn, so that one failure does not leave the rest behind
    (a failure is reported, and the next step runs)."""
    for step in steps:
        try:
            step()
        except Exception as exc:
            print("[bench] cleanup: %r" % exc, file=sys.stderr, flush=True)


def print_aligned(title, lines, right):
    """`lines` (the header first) as columns under `title`: the columns whose
    index is in `right` aligned right, the others left, a rule under the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    print("\n" + title)
    for n, line in enumerate(lines):
        print("  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


# -- HTTP and wrk ----------------------------------------------------------------------
def http_get(url, key=None):
    headers = {"Authorization": "Bearer %s" % key} if key else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def compare(direct_url, gateway_url, key):
    """Both answer 200 with the same JSON and X-Total-Count? Returns a list of
    differences (warnings); raises when either does not answer 200."""
    (s1, h1, b1), (s2, h2, b2) = http_get(direct_url, key), http_get(gateway_url, key)
    if s1 != 200 or s2 != 200:
        raise BenchError("pre-flight: baseline %s -> %s, gateway %s -> %s: %s"
                         % (direct_url, s1, gateway_url, s2, b2[:300]))
    problems = []
    if json.loads(b1) != json.loads(b2):
        problems.append("the bodies differ")
    if h1.get("X-Total-Count") != h2.get("X-Total-Count"):
        problems.append("X-Total-Count %s (baseline) vs %s (gateway)"
                        % (h1.get("X-Total-Count"), h2.get("X-Total-Count")))
    return problems, h1.get("X-Total-Count")


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(number, unit):
    return float(number) * UNITS_MS[unit]


def parse_wrk(text):
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not rps:
        raise BenchError("wrk printed no Requests/sec line:\n" + text)
    latency = {p: to_ms(n, u) for p, n, u in
               re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)}
    requests = re.search(r"^\s+(\d+) requests in", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        text)
    return {"rps": float(rps.group(1)), "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "requests": int(requests.group(1)) if requests else None,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, sockets.groups())) if sockets else 0}


def wrk(binary, url, key, seconds, connections, script=None, script_args=()):
    """wrk's output; `script` is a Lua file (-s) given `script_args`; no key, no
    Authorization header."""
    argv = [binary, "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency"]
    if key:
        argv += ["-H", "Authorization: Bearer %s" % key]
    if script:
        argv += ["-s", script]
    argv.append(url)
    if script_args:
        argv += ["--"] + [str(a) for a in script_args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError("wrk did not finish %s in %d s" % (url, seconds + 30))
    finally:
        if proc.poll() is None:     # interrupted (Ctrl-C): do not leave it running
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError("wrk exited with %s on %s:\n%s" % (proc.returncode, url, text))
    return text


def measure(binary, url, key, seconds, connections):
    wrk(binary, url, key, WARMUP_SECONDS, connections)        # warm pools, caches, JIT-less paths
    text = wrk(binary, url, key, seconds, connections)
    result = parse_wrk(text)
    result.update(url=url, wrk_output=text)
    return result


# -- report ------------------------------------------------------------------------------
def fmt(value, pattern="%.1f"):
    return "-" if value is None else pattern % value


# The aims: through the gateway, at least half the direct req/s, and p99 under 50 ms.
AIM_RATIO = 0.5
AIM_P99_MS = 50.0
AIM = ">=%.1fx, p99<%dms" % (AIM_RATIO, AIM_P99_MS)


def verdict(row):
    """'meets', or 'misses' and which part."""
    missed = []
    if row["ratio"] is None or row["ratio"] < AIM_RATIO:
        missed.append("ratio")
    if row["ours"]["p99_ms"] is None or row["ours"]["p99_ms"] >= AIM_P99_MS:
        missed.append("p99")
    return "misses " + "+".join(missed) if missed else "meets"


def print_table(rows):
    head = ("what", "base req/s", "ours req/s", "ratio", "base p50", "ours p50", "base p99",
            "ours p99", "aim", "verdict", "flags")
    lines = [head]
    for row in rows:
        b, o = row["baseline"], row["ours"]
        lines.append((row["what"], fmt(b["rps"]), fmt(o["rps"]), fmt(row["ratio"], "%.3f"),
                      fmt(b["p50_ms"], "%.2f"), fmt(o["p50_ms"], "%.2f"), fmt(b["p99_ms"], "%.2f"),
                      fmt(o["p99_ms"], "%.2f"), AIM, verdict(row), ", ".join(row["flags"]) or "ok"))
    print_aligned("GET through the gateway (ours) vs direct Falcon+SQLAlchemy (baseline); "
                  "latencies in ms; ratio = ours/baseline req/s",
                  lines, right=range(1, len(head) - 3))


def flags_of(measurements):
    flags = []
    for side, m in measurements:
        if m["non_2xx"]:
            flags.append("%s: %d non-2xx" % (side, m["non_2xx"]))
        if m["socket_errors"]:
            flags.append("%s: %d socket errors" % (side, m["socket_errors"]))
    return flags


# -- main ----------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=10_000, help="leads to seed (default 10000)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default 15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    args = parser.parse_args(argv)
    if args.leads < 100 or args.duration < 1 or args.connections < 1:
        parser.error("--leads must be >= 100, --duration and --connections >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    setup = bench_setup(PREFIX)
    if setup is None:
        return 1
    binary, server_url, vhost, key, env = setup
    server = gateway_server_settings()
    stack_log = os.path.join(RESULTS, "stack.log")
    open(stack_log, "w").close()      # RunningStack appends; one run per log
    stack = direct = direct_log = None
    try:
        drop_databases(server_url, PREFIX)
        stack = start_stack(env, stack_log)

        started = time.time()
        some_id = seed(with_database(server_url, "%s_leads" % PREFIX), args.leads)
        say("seeded %d leads in %.1f s" % (args.leads, time.time() - started))

        direct_port = free_port()
        direct_env = dict(env, BENCH_DB_POOL=str(server["threads"]), PYTHONPATH=os.pathsep.join(
            [os.path.join(ROOT, "libs"), os.path.join(ROOT, "services", "leads"),
             os.path.join(ROOT, "bench")]))
        direct_log = open(os.path.join(RESULTS, "direct.log"), "wb")
        direct = start_direct(direct_env, direct_port, server, direct_log)
        direct_base = "http://127.0.0.1:%d" % direct_port
        wait_ready(direct, direct_base + "/api/leads?limit=1")
        say("baseline on %s (%s, %d workers x %d threads, like the gateway)"
            % (direct_base, server["worker_class"], server["workers"], server["threads"]))

        scenarios = [("list limit=50", "/api/leads?limit=50"),
                     ("list limit=50 search=%s" % SEARCH_TERM,
                      "/api/leads?limit=50&search=%s" % SEARCH_TERM),
                     ("list limit=50 status=qualified", "/api/leads?limit=50&status=qualified"),
                     ("get /api/leads/{id}", "/api/leads/%s" % some_id)]
        warnings, totals = [], {}
        for what, path in scenarios:
            problems, total = compare(direct_base + path, stack.url + path, key)
            totals[what] = total
            warnings += ["%s: %s" % (what, p) for p in problems]

        rows = []
        for what, path in scenarios:
            say("wrk %s (%d s warm-up + %d s, each side)" % (what, WARMUP_SECONDS, args.duration))
            baseline = measure(binary, direct_base + path, key, args.duration, args.connections)
            ours = measure(binary, stack.url + path, key, args.duration, args.connections)
            flags = flags_of((("baseline", baseline), ("ours", ours)))
            flags += [w.split(": ", 1)[1] for w in warnings if w.startswith(what + ":")]
            rows.append({"what": what, "path": path, "x_total_count": totals[what],
                         "baseline": baseline, "ours": ours,
                         "ratio": ours["rps"] / baseline["rps"] if baseline["rps"] else None,
                         "flags": flags})
            rows[-1]["aim"], rows[-1]["verdict"] = AIM, verdict(rows[-1])

        print_table(rows)
        for w in warnings:
            print("WARNING: %s" % w)
        for row in rows:
            if row["flags"]:
                print("FLAGGED: %s: %s" % (row["what"], "; ".join(row["flags"])))
        report = {
            "benchmark": "read_path",
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                     text=True).stdout.strip() or None,
            "settings": {"leads": args.leads, "duration_s": args.duration,
                         "warmup_s": WARMUP_SECONDS, "connections": args.connections,
                         "wrk_threads": 2, "cpus": os.cpu_count(), "server": server,
                         "search_term": SEARCH_TERM},
            "warnings": warnings,
            "rows": rows,
        }
        out = os.path.join(RESULTS, "read_path.json")
        with open(out, "w") as f:
            json.dump(report, f, indent=2)
        say("wrote %s" % os.path.relpath(out, ROOT))
        return 0
    except BenchError as exc:
        print("[bench] FAILED: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        # Each step on its own, so one failure does not leave the rest behind.
        clean_up((lambda: stop_process(direct), lambda: direct_log and direct_log.close(),
                  lambda: stack and stack.stop(), lambda: drop_databases(server_url, PREFIX),
                  lambda: drop_vhost(vhost)))


def bench_setup(prefix):
    """What every benchmark starts with: wrk, SIGTERM handled like Ctrl-C (so
    the callers' finally blocks stop what they started), bench/results/, and
    the environment of a fresh stack on its own databases (`prefix`), vhost
    and port. Returns (wrk, server_url, vhost_uri, api_key, env), or None when
    wrk is missing."""
    binary = shutil.which("wrk")
    if not binary:
        print("wrk is not installed; install it (Debian/Ubuntu: `apt-get install wrk`) and rerun.",
              file=sys.stderr)
        return None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(RESULTS, exist_ok=True)
    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
    vhost = vhost_uri(prefix)
    key = "crm_" + secrets.token_hex(16)
    env = dict(os.environ, CRM_DB_PREFIX=prefix, CRM_PORT=str(free_port()), AMQP_URI=vhost,
               CRM_API_KEY=key, CRM_BIND="127.0.0.1")
    return binary, server_url, vhost, key, env


def drop_vhost(uri, prefix=PREFIX):
    """Remove the vhost when vhost_uri made it (not a shared one from the env)."""
    if uri.endswith("/" + prefix):
        delete_vhost(prefix)


if __name__ == "__main__":
    sys.exit(main())
