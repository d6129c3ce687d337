#!/usr/bin/env python3
"""Memory benchmark: the resident memory (VmRSS) of every process of a fresh
stack, idle after start and under a read + write load, next to baselines
measured in the same run.

Baselines: a bare `nameko run` of bench/hello_service.py (one RPC method,
the services' max_workers) for each nameko service, and bench/hello_app.py
(a hello-world Falcon app) under gunicorn with the gateway's worker settings
for the gateway. First the baselines: RSS idle (after start and one call,
as the stack's health check makes one to each service), then under load
(wrk on the hello app, RPC calls to the hello service at the same time);
then the same for a fresh stack (bin/stack.py, databases `crm_benchmem_*`, its
own vhost and port), its load being bench/memory_load.lua through the gateway
(lists and creates of leads, contacts and tasks, campaigns, dashboard stats).
The gateway's figure is the sum over its gunicorn master and workers.
Sampled every 0.5 s; each figure is the largest sample.

    .venv/bin/python bench/memory.py [--duration 15] [--connections 32] [--settle 5]

Prints a table, writes bench/results/memory.json. Exit status: 0 when it
measured (ratios over the aim are reported, not failed); 1 when the stack, a
baseline or wrk could not run. Everything it started is stopped and its
databases and vhost are dropped on the way out.
"""
import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import read_path as rp  # noqa: E402  (also puts libs/ on sys.path)
from read_path import BenchError, fmt, say  # noqa: E402

sys.path.insert(0, os.path.join(rp.ROOT, "services", "gateway"))

from crm_common.testing import drop_databases, free_port, queue_depth  # noqa: E402
from gateway.rpc import RpcClient  # noqa: E402  (the gateway's own client, for the baseline load)

PREFIX = "crm_benchmem"
RESULTS = rp.RESULTS
SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")
LUA = os.path.join(BENCH, "memory_load.lua")
HELLO_SERVICE = "bench_hello"
SAMPLE_SECONDS = 0.5
IDLE_SECONDS = 3             # sampled idle, after --settle
AIM_RATIO = 2.0              # our code should at most double what the framework takes
MIB = 1024.0


# -- processes and their memory ---------------------------------------------------------
def parents():
    """{pid: parent pid} of every process."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    found[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return found


def tree(pid, ppids):
    """`pid` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += [c for c, parent in ppids.items() if parent == p]
    return pids


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def stack_groups(supervisor_pid, ppids):
    """{name: [pids]} of a running stack: each service, the gateway (gunicorn
    master and workers) and the supervisor itself."""
    groups = {"supervisor (bin/stack.py)": [supervisor_pid]}
    for child in (c for c, parent in ppids.items() if parent == supervisor_pid):
        argv = cmdline(child)
        service = next((a[:-len(".service")] for a in argv if a.endswith(".service")), None)
        if service in SERVICES:
            groups.setdefault(service, []).extend(tree(child, ppids))
        elif "gateway.wsgi:app" in argv:
            groups.setdefault("gateway", []).extend(tree(child, ppids))
    return groups


class Sampler(threading.Thread):
    """Every SAMPLE_SECONDS, each group's summed RSS (groups() is asked
    anew each time: a restarted process is followed); keeps the largest
    sample and the process count of each group."""

    def __init__(self, groups):
        super().__init__(daemon=True)
        self.groups = groups
        self.max_kib, self.processes, self.samples = {}, {}, 0
        self.per_pid = {}             # {name: {pid: max KiB}}
        self.stopping = threading.Event()

    def sample(self):
        for name, pids in self.groups().items():
            sizes = {p: rss_kib(p) for p in pids}
            mine = self.per_pid.setdefault(name, {})
            for p, size in sizes.items():
                mine[p] = max(mine.get(p, 0), size)
            kib = sum(sizes.values())
            if kib > self.max_kib.get(name, 0):
                self.max_kib[name] = kib
            self.processes[name] = max(self.processes.get(name, 0), len(pids))
        self.samples += 1

    def run(self):
        while True:
            self.sample()
            if self.stopping.wait(SAMPLE_SECONDS):
                return

    def measure(self, seconds):
        """Sample for `seconds` (in this thread): {name: max MiB}."""
        deadline = time.monotonic() + seconds
        while True:
            self.sample()
            if time.monotonic() >= deadline:
                break
            time.sleep(SAMPLE_SECONDS)
        return self.result()

    def result(self):
        return {name: kib / MIB for name, kib in self.max_kib.items()}

    def stop(self):
        self.stopping.set()
        self.join()
        return self.result()

    def processes_mib(self):
        """{name: {pid: max MiB}}: e.g. the gateway's master and workers apart."""
        return {name: {str(p): kib / MIB for p, kib in pids.items()}
                for name, pids in self.per_pid.items()}


def sampled_while(groups, action):
    """Run `action()` while sampling `groups`: (its result, {name: max MiB},
    the sampler)."""
    sampler = Sampler(groups)
    sampler.start()
    try:
        outcome = action()
    finally:
        peak = sampler.stop()
    return outcome, peak, sampler


# -- the baselines --------------------------------------------------------------------------
def bin_path(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else name


def start_hello_service(env, workdir, log_file):
    """A bare `nameko run` of bench/hello_service.py, with the services' max_workers."""
    config = os.path.join(workdir, "hello_service.yml")
    with open(config, "w") as f:
        json.dump({"AMQP_URI": env["AMQP_URI"],                     # JSON is YAML
                   "max_workers": int(env.get("CRM_MAX_WORKERS", "10"))}, f)
    return subprocess.Popen([bin_path("nameko"), "run", "--config", config, "hello_service"],
                            cwd=BENCH, env=dict(env, PYTHONPATH=BENCH), stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=rp.die_with_parent)


def wait_service(client, proc, amqp_uri, timeout=30):
    """Until the bare service answers a ping (its queue first: a call with no
    queue to take it is returned by the broker, which py-amqp reports)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError("the bare nameko service exited with %s (log: "
                             "bench/results/memory_baseline.log)" % proc.returncode)
        try:
            if queue_depth(amqp_uri, "rpc-%s" % HELLO_SERVICE) is not None:
                client.call(HELLO_SERVICE, "ping", timeout=2)
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise BenchError("the bare nameko service does not answer after %d s" % timeout)
        time.sleep(0.3)


def rpc_load(client, seconds, threads, stop):
    """`threads` callers of the hello service's ping for `seconds` (or until
    `stop` is set): calls made."""
    deadline = time.monotonic() + seconds
    counts = [0] * threads

    def caller(i):
        while time.monotonic() < deadline and not stop.is_set():
            try:
                client.call(HELLO_SERVICE, "ping", timeout=5)
                counts[i] += 1
            except Exception:
                time.sleep(0.05)

    workers = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 10)
    return sum(counts)


# -- report ----------------------------------------------------------------------------------
def build_rows(base_idle, base_load, idle, load):
    """One row per process (idle, under load) and the totals; MiB."""
    def row(what, baseline, ours, aim=True):
        ratio = ours / baseline if baseline and ours is not None else None
        return {"what": what, "baseline_mib": baseline, "ours_mib": ours, "ratio": ratio,
                "aim": "<= %.1fx" % AIM_RATIO if aim else "-",
                "verdict": ("ok" if ratio <= AIM_RATIO else "MISS") if aim and ratio else "-"}

    rows = []
    for name in SERVICES + ("gateway",):
        base = "gunicorn" if name == "gateway" else "nameko"
        for label, b, o in (("idle", base_idle, idle), ("under load", base_load, load)):
            rows.append(row("%s, %s" % (name, label), b.get(base), o.get(name)))
    for label, b, o in (("idle", base_idle, idle), ("under load", base_load, load)):
        base_total = len(SERVICES) * b.get("nameko", 0) + b.get("gunicorn", 0)
        ours_total = sum(o.get(name, 0) for name in SERVICES + ("gateway",))
        rows.append(row("all 6 (5 services + gateway), %s" % label, base_total, ours_total))
    for label, o in (("idle", idle), ("under load", load)):
        rows.append(row("supervisor (bin/stack.py), %s" % label, None,
                        o.get("supervisor (bin/stack.py)"), aim=False))
    return rows


def print_table(rows):
    head = ("what", "baseline", "ours", "ratio", "aim", "verdict")
    lines = [head] + [(r["what"], fmt(r["baseline_mib"]), fmt(r["ours_mib"]),
                       fmt(r["ratio"], "%.2f"), r["aim"], r["verdict"]) for r in rows]
    rp.print_aligned("VmRSS in MiB, largest sample (every %.1f s); baseline: a bare nameko "
                     "service (one rpc method), a hello-world Falcon app under gunicorn (the "
                     "gateway's settings); ratio = ours/baseline" % SAMPLE_SECONDS,
                     lines, right=(1, 2, 3))


# -- main ------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of load (15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--settle", type=int, default=5,
                        help="seconds after start before the idle samples (5)")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.connections < 1 or args.settle < 0:
        parser.error("--duration and --connections must be >= 1, --settle >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    setup = rp.bench_setup(PREFIX)
    if setup is None:
        return 1
    binary, server_url, vhost, key, env = setup
    server = rp.gateway_server_settings()
    rpc_callers = int(os.environ.get("CRM_GATEWAY_THREADS", "16"))   # the gateway's request threads
    stack_log = os.path.join(RESULTS, "memory_stack.log")
    open(stack_log, "w").close()      # RunningStack appends; one run per log
    stack = hello_app = hello_service = client = baseline_log = workdir = None
    stop_callers = threading.Event()
    try:
        drop_databases(server_url, PREFIX)
        workdir = tempfile.mkdtemp(prefix="bench-memory-")
        baseline_log = open(os.path.join(RESULTS, "memory_baseline.log"), "wb")

        # The baselines first, alone on the machine.
        port = free_port()
        hello_app = rp.start_direct(dict(env, PYTHONPATH=BENCH), port, server, baseline_log,
                                    app="hello_app:app")
        hello_url = "http://127.0.0.1:%d/" % port
        rp.wait_ready(hello_app, hello_url)
        hello_service = start_hello_service(env, workdir, baseline_log)
        client = RpcClient(env["AMQP_URI"], timeout=5, name="bench-memory")
        wait_service(client, hello_service, env["AMQP_URI"])
        ppids = parents()
        base_pids = {"gunicorn": tree(hello_app.pid, ppids), "nameko": [hello_service.pid]}
        if len(base_pids["gunicorn"]) != 1 + server["workers"]:
            raise BenchError("the hello app runs %d processes, not a master and %d workers"
                             % (len(base_pids["gunicorn"]), server["workers"]))

        def base_groups():
            return {"gunicorn": tree(hello_app.pid, parents()), "nameko": [hello_service.pid]}

        say("baselines up (gunicorn %s, %d workers x %d threads; nameko max_workers %s); "
            "idle %d s + %d s sampled" % (server["worker_class"], server["workers"],
                                           server["threads"], env.get("CRM_MAX_WORKERS", "10"),
                                           args.settle, IDLE_SECONDS))
        time.sleep(args.settle)
        base_sampler = Sampler(base_groups)
        base_idle = base_sampler.measure(IDLE_SECONDS)

        say("baselines under load for %d s (wrk -c%d on the hello app, %d RPC callers)"
            % (args.duration, args.connections, rpc_callers))
        calls = {}

        def base_load():
            caller = threading.Thread(target=lambda: calls.update(
                n=rpc_load(client, args.duration, rpc_callers, stop_callers)), daemon=True)
            caller.start()
            text = rp.wrk(binary, hello_url, None, args.duration, args.connections)
            caller.join(args.duration + 15)
            return text

        wrk_base, base_peak, base_load_sampler = sampled_while(base_groups, base_load)
        base_wrk = rp.parse_wrk(wrk_base)
        say("baselines served %.0f req/s over HTTP and %.0f RPC calls/s"
            % (base_wrk["rps"], calls.get("n", 0) / args.duration))
        client.close()
        client = None
        for proc in (hello_app, hello_service):
            rp.stop_process(proc)

        # Then the stack.
        stack = rp.start_stack(env, stack_log)

        def groups():
            return stack_groups(stack.proc.pid, parents())

        found = groups()
        missing = [n for n in SERVICES + ("gateway",) if n not in found]
        if missing:
            raise BenchError("no process found for %s" % ", ".join(missing))
        say("stack up; idle %d s + %d s sampled" % (args.settle, IDLE_SECONDS))
        time.sleep(args.settle)
        sampler = Sampler(groups)
        idle = sampler.measure(IDLE_SECONDS)
        processes = dict(sampler.processes)

        say("stack under load for %d s (wrk -c%d, %s)"
            % (args.duration, args.connections, os.path.basename(LUA)))
        wrk_ours, peak, load_sampler = sampled_while(
            groups, lambda: rp.wrk(binary, stack.url, key, args.duration, args.connections,
                                   script=LUA))
        ours_wrk = rp.parse_wrk(wrk_ours)
        say("the stack served %.0f req/s (%d non-2xx, %d socket errors)"
            % (ours_wrk["rps"], ours_wrk["non_2xx"], ours_wrk["socket_errors"]))

        rows = build_rows(base_idle, base_peak, idle, peak)
        print_table(rows)
        warnings = []
        if ours_wrk["non_2xx"] or ours_wrk["socket_errors"]:
            warnings.append("the load had %d non-2xx answers and %d socket errors"
                            % (ours_wrk["non_2xx"], ours_wrk["socket_errors"]))
        restarted = {n: c for n, c in load_sampler.processes.items() if c != processes.get(n)}
        if restarted:
            warnings.append("process counts changed under load: %s" % restarted)
        for w in warnings:
            print("WARNING: %s" % w)
        report = {
            "benchmark": "memory",
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=rp.ROOT,
                                     capture_output=True, text=True).stdout.strip() or None,
            "settings": {"duration_s": args.duration, "connections": args.connections,
                         "settle_s": args.settle, "idle_sampled_s": IDLE_SECONDS,
                         "sample_every_s": SAMPLE_SECONDS, "rpc_callers": rpc_callers,
                         "cpus": os.cpu_count(), "server": server,
                         "aims": {"ratio_max": AIM_RATIO}},
            "table": rows,
            "processes": {"baseline": {k: len(v) for k, v in base_pids.items()},
                          "ours": processes},
            # Each process apart (a gunicorn master is its group's lowest pid).
            "per_process_mib": {"baseline_idle": base_sampler.processes_mib(),
                                "baseline_under_load": base_load_sampler.processes_mib(),
                                "idle": sampler.processes_mib(),
                                "under_load": load_sampler.processes_mib()},
            "baseline_load": {"http": dict(base_wrk, wrk_output=wrk_base),
                              "rpc_calls": calls.get("n")},
            "ours_load": dict(ours_wrk, wrk_output=wrk_ours),
            "warnings": warnings,
        }
        out = os.path.join(RESULTS, "memory.json")
        with open(out, "w") as f:
            json.dump(report, f, indent=2)
        say("wrote %s" % os.path.relpath(out, rp.ROOT))
        return 0
    except BenchError as exc:
        print("[bench] FAILED: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        rp.clean_up((stop_callers.set, lambda: client and client.close(),
                     lambda: rp.stop_process(hello_app), lambda: rp.stop_process(hello_service),
                     lambda: baseline_log and baseline_log.close(),
                     lambda: stack and stack.stop(),
                     lambda: drop_databases(server_url, PREFIX),
                     lambda: rp.drop_vhost(vhost, PREFIX),
                     lambda: workdir and shutil.rmtree(workdir, ignore_errors=True)))


if __name__ == "__main__":
    sys.exit(main())
