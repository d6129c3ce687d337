#!/usr/bin/env python3
"""Run the black-box acceptance suite (../shared/acceptance) against a fresh
stack started the way `make run` starts it (what `make acceptance` does).

ACCEPTANCE names the files to run (default: those of the finished issues);
ACCEPTANCE_DESELECT names test ids left to an issue still open.
"""
import os
import secrets
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "libs"))

from crm_common.testing import RunningStack, drop_databases, free_port  # noqa: E402

# The files the finished issues name, and the tests that belong to open ones.
DEFAULT_FILES = ("test_platform.py test_leads.py test_contacts_tasks.py "
                 "test_campaigns_dashboard.py test_webhook_settings.py")
DEFAULT_DESELECT = ""

SUITE_SETTINGS = {
    "META_APP_SECRET": "acceptance-secret",
    "META_VERIFY_TOKEN": "acceptance-verify",
    "META_ACCESS_TOKEN": "acceptance-token",
    "META_AD_ACCOUNT_ID": "act_1234",
    "FAKE_GRAPH_PORT": "18080",
}


def main():
    suite = os.environ.get("ACCEPTANCE_DIR") or os.path.join(ROOT, "..", "shared", "acceptance")
    suite = os.path.abspath(suite)
    if not os.path.isdir(suite):
        print("acceptance suite not found at %s: nothing to run" % suite)
        return 0
    files = (os.environ.get("ACCEPTANCE") or DEFAULT_FILES).split()
    deselect = (os.environ.get("ACCEPTANCE_DESELECT", DEFAULT_DESELECT)).split()

    env = dict(os.environ)
    for name, value in SUITE_SETTINGS.items():
        env.setdefault(name, value)
    port = free_port()
    prefix = "crm_acc_%s" % secrets.token_hex(3)
    env.update({
        "CRM_DB_PREFIX": prefix,
        "CRM_PORT": str(port),
        "CRM_URL": "http://127.0.0.1:%d" % port,
        "CRM_PUBLIC_URL": "http://127.0.0.1:%d" % port,
        "CRM_API_KEY": "crm_" + secrets.token_hex(24),
        "META_GRAPH_URL": env.get("META_GRAPH_URL") or
        "http://127.0.0.1:%s/v21.0" % env["FAKE_GRAPH_PORT"],
    })
    server = env.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
    log_path = os.path.join(ROOT, "acceptance-stack.log")
    print("acceptance: starting the stack on port %d (databases %s_*, log %s)"
          % (port, prefix, log_path), flush=True)
    try:
        with RunningStack(env, sys.executable, log_path=log_path):
            argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                    "-p", "no:pytest_nameko", "-q", "-o", "addopts=", "--rootdir", suite]
            argv += [os.path.join(suite, f) for f in files]
            for test_id in deselect:
                argv += ["--deselect", test_id]
            return subprocess.call(argv, cwd=suite, env=dict(env, PYTHONDONTWRITEBYTECODE="1"))
    finally:
        drop_databases(server, prefix)


if __name__ == "__main__":
    sys.exit(main())
