"""The whole stack, started the way `make run` starts it (bin/stack.py), on
its own databases and port; stopped (with every child) after the module."""
import os
import secrets
import sys

import pytest
import requests

from crm_common.fake_graph import FakeGraph
from crm_common.testing import (RunningStack, delete_vhost, drop_databases, free_port,
                                free_port_block, vhost_uri)

GRAPH_TOKEN = "e2e-graph-token"
META_APP_SECRET = "e2e-app-secret"
META_VERIFY_TOKEN = "e2e-verify-token"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Api:
    def __init__(self, url, key):
        self.url, self.key = url, key
        self.http = requests.Session()

    def request(self, method, path, key=None, **kw):
        headers = kw.pop("headers", {})
        headers.setdefault("Authorization", "Bearer " + (key or self.key))
        kw.setdefault("timeout", 15)
        return self.http.request(method, self.url + path, headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="package")
def amqp_uri():
    """The stack gets a vhost of its own (its services have the same names as
    the integration tests' containers, and must not take their calls); the
    root `event_tap` listens there too."""
    return vhost_uri(os.environ["CRM_DB_PREFIX"] + "_e2e")


@pytest.fixture(scope="package")
def graph():
    """A fake Graph API the stack reads lead-ad submissions from."""
    fake = FakeGraph(token=GRAPH_TOKEN)
    yield fake
    fake.stop()


@pytest.fixture(scope="package")
def stack(amqp_uri, graph):
    prefix = os.environ["CRM_DB_PREFIX"] + "_e2e"
    port = free_port()
    env = dict(os.environ, CRM_DB_PREFIX=prefix, CRM_PORT=str(port), AMQP_URI=amqp_uri,
               CRM_METRICS_BASE_PORT=str(free_port_block(16)),
               CRM_API_KEY="crm_" + secrets.token_hex(16), CRM_RPC_TIMEOUT="3",
               CRM_PUBLIC_URL="https://crm.example.com", CRM_GATEWAY_WORKERS="2",
               META_GRAPH_URL=graph.url, META_ACCESS_TOKEN=GRAPH_TOKEN,
               META_AD_ACCOUNT_ID=graph.account,
               META_APP_SECRET=META_APP_SECRET, META_VERIFY_TOKEN=META_VERIFY_TOKEN,
               META_LEAD_RETRY_BACKOFF="0.5", META_LEAD_CLAIM_SECONDS="3")
    log = os.path.join(ROOT, "e2e-stack.log")
    if os.path.exists(log):         # this run's lines only (tests read them)
        os.remove(log)
    running = RunningStack(env, sys.executable, log_path=log).start()
    yield running
    running.stop()
    drop_databases(env.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"), prefix)
    delete_vhost(prefix)


@pytest.fixture(scope="package")
def api(stack):
    return Api(stack.url, stack.env["CRM_API_KEY"])


@pytest.fixture(scope="package")
def meta_app_secret():
    return META_APP_SECRET
