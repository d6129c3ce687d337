#!/usr/bin/env python3
"""Where the CPU goes: py-spy on every process of a fresh stack while wrk
loads one route.

    .venv/bin/python bench/profile.py list|search|get|create|patch
        [--duration 15] [--connections 32] [--leads 10000] [--top 25]

Starts a stack like the benchmarks do (databases `crm_benchprof_*`, its own
vhost and port), seeds leads, warms the route up with wrk for 3 s, then runs
wrk for `--duration` seconds while `py-spy record` samples (100 Hz,
non-blocking) each gateway worker and each service process. For each process
it prints the CPU it used (from /proc), then the functions with the most
samples: `self` (the function on top of the stack) and `total` (anywhere on
it), as a share of that process's samples. Writes each process's collapsed
stacks and an SVG flame graph to bench/results/profiles/<route>-<process>.*,
and wrk's output beside them.

Needs py-spy (installed into the virtualenv from bench/requirements.txt when
missing) and wrk. Stops everything it started and drops its databases and vhost.
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import memory  # noqa: E402
import read_path  # noqa: E402
from read_path import (RESULTS, ROOT, BenchError, bench_setup, drop_databases,  # noqa: E402
                       drop_vhost, say, seed, with_database)

PREFIX = "crm_benchprof"
PROFILES = os.path.join(RESULTS, "profiles")
ROUTES = {
    "list": ("GET", "/api/leads?limit=50"),
    "search": ("GET", "/api/leads?limit=50&search=%s" % read_path.SEARCH_TERM),
    "status": ("GET", "/api/leads?limit=50&status=qualified"),
    "get": ("GET", "/api/leads/{id}"),
    "create": ("POST", "/api/leads"),
    "patch": ("PATCH", "/api/leads/{id}"),
}


def py_spy():
    """The py-spy binary, installed into the virtualenv when missing."""
    binary = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(binary):
        say("installing py-spy (bench/requirements.txt)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "-r",
                        os.path.join(BENCH, "requirements.txt")], check=True)
    return binary


def cpu_seconds(pid):
    """CPU seconds `pid` has used so far (0 when it is gone)."""
    try:
        return read_path.process_cpu(pid)[1]
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_cpu():
    """{pid: (command name, CPU seconds so far)} of every process, and the
    machine's busy CPU seconds."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found[pid] = read_path.process_cpu(pid)
        except (OSError, ValueError, IndexError):
            continue
    return found, read_path.machine_busy()


def cpu_by_command(before, after, elapsed):
    """Cores each command used between two machine_cpu() samples: per process
    (a kernel worker renames itself as it goes), then summed by its name."""
    used = collections.Counter()
    for pid, (name, seconds) in after.items():
        used[name] += (seconds - before.get(pid, (name, 0.0))[1]) / elapsed
    return used


def processes(stack):
    """{label: pid} of the gateway's workers and each service process."""
    groups = memory.stack_groups(stack.proc.pid, memory.parents())
    found = {}
    for name, pids in sorted(groups.items()):
        if name.startswith("supervisor"):
            continue
        if name == "gateway":
            master = min(pids)
            for n, pid in enumerate(sorted(p for p in pids if p != master), 1):
                found["gateway-w%d" % n] = pid
        else:
            for n, pid in enumerate(sorted(pids), 1):
                found[name if len(pids) == 1 else "%s-%d" % (name, n)] = pid
    return found


def frame_name(frame):
    """py-spy's raw frame 'func (path/to/module.py:line)' -> 'func (module.py)'."""
    func, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return "%s (%s)" % (func, short)


def summarize(raw_file, top):
    """(samples, [(self share, name)], [(total share, name)]) from py-spy's
    collapsed stacks."""
    selfs, totals, samples = collections.Counter(), collections.Counter(), 0
    with open(raw_file) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count)
            frames = [frame_name(fr) for fr in stack.split(";")]
            samples += count
            selfs[frames[-1]] += count
            for name in set(frames):
                totals[name] += count
    if not samples:
        return 0, [], []
    return (samples, [(n / samples, name) for name, n in selfs.most_common(top)],
            [(n / samples, name) for name, n in totals.most_common(top)])


def record(binary, label, pid, seconds, route):
    """py-spy sampling `pid` for `seconds` into <route>-<label>.txt (collapsed stacks)."""
    base = os.path.join(PROFILES, "%s-%s" % (route, label))
    proc = subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
         "--nonblocking", "--format", "raw", "--output", base + ".txt"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return base, proc


def flamegraph(raw_file, svg_file):
    """An SVG flame graph from collapsed stacks (py-spy cannot convert, so the
    SVG is drawn here in the simplest form: one rect per frame)."""
    tree = {}
    total = 0
    with open(raw_file) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            total += int(count)
            node = tree
            for frame in stack.split(";"):
                entry = node.setdefault(frame, [0, {}])
                entry[0] += int(count)
                node = entry[1]
    width, row = 1800.0, 16
    rects = []

    def walk(node, x, depth):
        for frame, (count, children) in sorted(node.items()):
            w = width * count / total
            if w >= 0.5:
                name = frame_name(frame).replace("&", "&amp;").replace("<", "&lt;")
                rects.append('<g><title>%s: %d (%.1f%%)</title><rect x="%.1f" y="%d" width="%.1f" '
                             'height="%d" fill="hsl(%d,70%%,65%%)"/><text x="%.1f" y="%d" '
                             'font-size="11">%s</text></g>'
                             % (name, count, 100.0 * count / total, x, depth * row, w, row - 1,
                                hash(frame) % 60, x + 2, depth * row + 12,
                                name[:int(w / 7)] if w > 30 else ""))
                walk(children, x, depth + 1)
            x += w
    walk(tree, 0.0, 0)
    depth = max((int(r.split('y="')[1].split('"')[0]) for r in rects), default=0) // row + 1
    with open(svg_file, "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
                'font-family="monospace">%s</svg>' % (width, depth * row, "".join(rects)))


def wrk_args(route, some_id, ids_file):
    method, path = ROUTES[route]
    path = path.replace("{id}", some_id)
    if route == "create":
        return path, os.path.join(BENCH, "write_path.lua"), ["post", os.urandom(4).hex()]
    if route == "patch":
        return "/api/leads", os.path.join(BENCH, "write_path.lua"), ["patch", os.urandom(4).hex(),
                                                                     ids_file, 2]
    return path, None, []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("route", choices=sorted(ROUTES))
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    spy = py_spy()
    setup = bench_setup(PREFIX)
    if setup is None:
        return 1
    binary, server_url, vhost, key, env = setup
    os.makedirs(PROFILES, exist_ok=True)
    stack_log = os.path.join(RESULTS, "profile_stack.log")
    open(stack_log, "w").close()
    stack, ids_file = None, None
    try:
        drop_databases(server_url, PREFIX)
        stack = read_path.start_stack(env, stack_log)
        some_id = seed(with_database(server_url, "%s_leads" % PREFIX), args.leads)
        if args.route == "patch":
            import sqlalchemy as sa
            engine = sa.create_engine(with_database(server_url, "%s_leads" % PREFIX))
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE leads SET status = 'new'"))
                ids = [str(r[0]) for r in conn.execute(sa.text("SELECT id FROM leads LIMIT 2000"))]
            engine.dispose()
            fd, ids_file = tempfile.mkstemp(prefix="profile-ids-", suffix=".txt")
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(ids) + "\n")
        path, script, script_args = wrk_args(args.route, some_id, ids_file)
        url = stack.url + path
        say("warm-up: wrk %s %s" % (ROUTES[args.route][0], path))
        read_path.wrk(binary, url, key, read_path.WARMUP_SECONDS, args.connections, script,
                      script_args)
        procs = processes(stack)
        cpu_before = {label: cpu_seconds(pid) for label, pid in procs.items()}
        machine_before, busy_before = machine_cpu()
        say("recording %s for %d s while wrk loads %s %s"
            % (", ".join(procs), args.duration, ROUTES[args.route][0], path))
        recorders = {label: record(spy, label, pid, args.duration, args.route)
                     for label, pid in procs.items()}
        started = time.time()
        text = read_path.wrk(binary, url, key, args.duration, args.connections, script,
                             script_args)
        elapsed = time.time() - started
        cpu = {label: (cpu_seconds(pid) - cpu_before[label]) / elapsed
               for label, pid in procs.items()}
        machine_after, busy_after = machine_cpu()
        for label, (base, proc) in recorders.items():
            _, err = proc.communicate(timeout=args.duration + 60)
            if proc.returncode:
                print("py-spy on %s exited %s: %s" % (label, proc.returncode, err.decode()[-500:]))
        result = read_path.parse_wrk(text)
        with open(os.path.join(PROFILES, "%s-wrk.txt" % args.route), "w") as f:
            f.write(text)
        print("\n%s %s: %.0f req/s, p50 %.1f ms, p99 %.1f ms, non-2xx %d"
              % (ROUTES[args.route][0], path, result["rps"], result["p50_ms"], result["p99_ms"],
                 result["non_2xx"]))
        rps = result["rps"] or 1.0
        print("\nthe machine: %.2f of %d cores busy, %.2f ms CPU per request; by command "
              "(py-spy's own included):" % ((busy_after - busy_before) / elapsed, os.cpu_count(),
                                            1000.0 * (busy_after - busy_before) / elapsed / rps))
        used = cpu_by_command(machine_before, machine_after, elapsed)
        for name, cores in used.most_common(8):
            if cores >= 0.01:
                print("  %-16s %.2f cores  %.2f ms/request" % (name, cores, 1000.0 * cores / rps))
        for label, (base, _) in sorted(recorders.items(), key=lambda kv: -cpu[kv[0]]):
            raw = base + ".txt"
            if not os.path.exists(raw):
                continue
            samples, selfs, totals = summarize(raw, args.top)
            flamegraph(raw, base + ".svg")
            print("\n== %s (pid %d): %.2f cores, %.2f ms CPU per request, %d samples; %s.svg"
                  % (label, procs[label], cpu[label],
                     1000.0 * cpu[label] / result["rps"] if result["rps"] else 0, samples,
                     os.path.relpath(base, ROOT)))
            print("   self  total   (of this process's samples)")
            shares = {name: share for share, name in totals}
            for share, name in selfs:
                print("  %5.1f%% %5.1f%%  %s" % (100 * share, 100 * shares.get(name, share), name))
            print("  -- by total --")
            for share, name in totals:
                print("         %5.1f%%  %s" % (100 * share, name))
        return 0
    except BenchError as exc:
        print("[bench] FAILED: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        read_path.clean_up((lambda: stack and stack.stop(),
                            lambda: drop_databases(server_url, PREFIX),
                            lambda: drop_vhost(vhost, PREFIX),
                            lambda: ids_file and os.unlink(ids_file)))


if __name__ == "__main__":
    sys.exit(main())
