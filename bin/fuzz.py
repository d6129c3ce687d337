#!/usr/bin/env python3
"""Fuzz the HTTP API with schemathesis (what `make fuzz` does).

Starts a fresh stack the way `make run` starts it (its own crm_fuzz_*
databases and vhost, a generated API key, Meta settings read from a fake
Graph API), runs schemathesis over /api/openapi.json (every operation: see
crm_common/contract.py for the checks, the one left out and the one run last),
prints the number of requests, operations and failures, and exits 1 when a
check failed. Reports (JSON, HAR) and the stack's log go to fuzz-report/.

    python bin/fuzz.py [--max-examples N] [--seed S]
"""
import argparse
import os
import secrets
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "libs"))

from crm_common import contract  # noqa: E402

MIN_REQUESTS = 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100,
                        help="test cases per operation and phase (default 100)")
    parser.add_argument("--seed", type=int, help="schemathesis's seed, to replay a run")
    parser.add_argument("--report-dir", default=os.path.join(ROOT, "fuzz-report"))
    args = parser.parse_args()

    shutil.rmtree(args.report_dir, ignore_errors=True)
    os.makedirs(args.report_dir)
    prefix = "crm_fuzz_%s" % secrets.token_hex(3)
    log_path = os.path.join(args.report_dir, "stack.log")
    print("fuzz: starting a stack (databases %s_*, log %s)" % (prefix, log_path), flush=True)
    with contract.stack_under_test(prefix, log_path) as (stack, _):
        result, documented = contract.fuzz(stack.url, stack.env["CRM_API_KEY"], args.report_dir,
                                          args.max_examples, seed=args.seed, echo=True)
    print()
    for (method, path), reason in contract.EXCLUDED.items():
        print("fuzz: not fuzzed: %s %s (%s)" % (method.upper(), path, reason))
    print("fuzz: not fuzzed: %s %s (schemathesis reads the document from it)"
          % (contract.SCHEMA_OPERATION[0].upper(), contract.SCHEMA_OPERATION[1]))
    for (method, path), reason in contract.LAST.items():
        print("fuzz: fuzzed last: %s %s (%s)" % (method.upper(), path, reason))
    for (method, path), reason in contract.EXPECTED_REFUSALS.items():
        print("fuzz: refused as it should be: %s %s (%s)" % (method.upper(), path, reason))
    print("fuzz: " + contract.summary(result, documented))
    if result.requests < MIN_REQUESTS:
        print("fuzz: fewer than %d requests: raise --max-examples" % MIN_REQUESTS)
        return 1
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
