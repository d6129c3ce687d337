#!/usr/bin/env python3
"""`make bench`: the benchmarks in bench/, one after the other (in the order
of BENCHMARKS). Exits non-zero only when a benchmark could not run (each one's
own exit status; poor figures are reported, not failed).

    .venv/bin/python bench/run.py                          # all, default settings
    .venv/bin/python bench/run.py --only dashboard [ARGS]  # one, ARGS passed on
                                                           # (see bench/<name>.py --help)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dashboard  # noqa: E402
import indexes  # noqa: E402
import memory  # noqa: E402
import read_path  # noqa: E402
import webhook  # noqa: E402
import write_path  # noqa: E402

BENCHMARKS = {"read_path": read_path.main, "dashboard": dashboard.main,
              "webhook": webhook.main, "memory": memory.main, "write_path": write_path.main,
              "indexes": indexes.main}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS),
                        help="run this benchmark only; the remaining arguments go to it")
    args, rest = parser.parse_known_args(argv)
    if rest and not args.only:
        parser.error("arguments %s need --only <benchmark>" % " ".join(rest))
    names = [args.only] if args.only else list(BENCHMARKS)
    failed = []
    for name in names:
        print("[bench] === %s ===" % name, flush=True)
        status = BENCHMARKS[name](rest)
        if status:
            failed.append(name)
    if failed:
        print("[bench] could not run: %s" % ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
