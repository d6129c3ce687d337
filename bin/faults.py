#!/usr/bin/env python3
"""`make faults`: the fault suite (tests/faults/, docs/faults.md). Each
scenario starts a stack of its own, drives it with a bounded load, breaks a
part of it, and checks that every write the gateway acknowledged is there,
none twice, with no 500s; then a table. Exits 1 when a scenario fails.

    .venv/bin/python bin/faults.py                       # every scenario
    .venv/bin/python bin/faults.py --only kill9 webhook  # some of them
    .venv/bin/python bin/faults.py --no-restart-deps     # all but those restarting shared servers

Scenarios `broker-restart` and `postgres-restart` stop and start the machine's
RabbitMQ and PostgreSQL (every other user of them sees it): on a machine shared
with other work, skip them with --no-restart-deps (or CRM_FAULTS_RESTART_DEPS=0);
they are then listed as SKIP.
"""
import argparse
import os
import signal
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "libs"), os.path.join(ROOT, "tests", "faults")]

import harness  # noqa: E402
from scenarios import SCENARIOS, Options  # noqa: E402

COLUMNS = ("scenario", "requests", "acked writes", "lost", "duplicated", "500", "503",
           "other 5xx", "max time", "verdict")


def table(results):
    rows = [COLUMNS] + [(r.scenario, str(r.requests), str(r.acked), str(r.lost), str(r.duplicated),
                         str(r.s500), str(r.s503), str(r.other5xx), "%.2f s" % r.max_time,
                         r.verdict) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(results):
    out = []
    for r in results:
        out.append("%s: %s" % (r.scenario, r.verdict))
        out += ["  FAIL  %s" % f for f in r.failures]
        out += ["  note  %s" % n for n in r.notes]
    return "\n".join(out)


def main(argv=None):
    names = [n for n, _, _ in SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help="run these scenarios only: %s" % ", ".join(names))
    parser.add_argument("--restart-deps", action=argparse.BooleanOptionalAction,
                        default=os.environ.get("CRM_FAULTS_RESTART_DEPS", "1") != "0",
                        help="run the scenarios that restart RabbitMQ and PostgreSQL (default)")
    parser.add_argument("--threads", type=int, default=Options.threads, help="load threads")
    parser.add_argument("--outage", type=float, default=Options.outage,
                        help="seconds a broker, database or Graph outage lasts")
    args = parser.parse_args(argv)
    opts = Options(threads=args.threads, outage=args.outage, restart_deps=args.restart_deps)

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)

    results = []
    started = time.monotonic()
    try:
        for name, run, needs_restart in SCENARIOS:
            if args.only and name not in args.only:
                continue
            if needs_restart and not opts.restart_deps:
                results.append(harness.Result(name, verdict="SKIP", notes=[
                    "restarts the machine's RabbitMQ/PostgreSQL: skipped (--no-restart-deps)"]))
                harness.say("%s: skipped (--no-restart-deps)" % name)
                continue
            harness.say("=== %s ===" % name)
            t = time.monotonic()
            try:
                result = run(opts)
            except Exception as exc:
                traceback.print_exc()
                result = harness.Result(name, failures=["the scenario itself failed: %s: %s"
                                                        % (type(exc).__name__, exc)])
            result.scenario = name
            harness.say("%s: %s in %.0f s" % (name, result.verdict, time.monotonic() - t))
            results.append(result)
    except KeyboardInterrupt:
        harness.say("interrupted; the stacks were cleaned up")
        print(table(results))
        return 130
    print()
    print(details(results))
    print()
    print(table(results))
    print("\n%d scenario(s) in %.0f s; logs in %s" % (
        len(results), time.monotonic() - started, os.path.relpath(harness.LOG_DIR, ROOT)))
    return 1 if any(r.verdict == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
