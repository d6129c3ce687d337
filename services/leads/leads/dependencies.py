"""The leads service's dependencies."""
import os
from pathlib import Path

from nameko.extensions import DependencyProvider

from crm_common.config import Settings
from crm_common.db import Database
from crm_common.graph import GraphClient
from leads.lead_ads import GRAPH_FIELDS, RetryPolicy

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def LeadsDatabase():
    return Database(ALEMBIC_DIR, idempotency_keys=True)


def remote_timeout():
    """How long a call to another service may take: well inside the gateway's
    own CRM_RPC_TIMEOUT, so the gateway hears our 503 rather than its own."""
    return max(1.0, Settings.from_env().rpc_timeout * 0.6)


class LeadAdsGraph(DependencyProvider):
    """Reads lead-ad submissions from the Graph API (META_GRAPH_URL,
    META_ACCESS_TOKEN), one request per fetch: retries are scheduled in the
    database (`policy`, from META_LEAD_MAX_ATTEMPTS, META_LEAD_RETRY_BACKOFF,
    META_LEAD_MAX_BACKOFF; META_LEAD_CLAIM_SECONDS is how long a claimed
    submission waits for a process that died), not slept through in a worker. A container's
    config may override each name (tests)."""

    def setup(self):
        env = Settings.from_env()
        config = self.container.config

        def get(name, default):
            return config.get(name, os.environ.get(name) or default)

        self.base_url = get("META_GRAPH_URL", env.meta_graph_url)
        self.token = get("META_ACCESS_TOKEN", env.meta_access_token)
        defaults = RetryPolicy()
        self.policy = RetryPolicy(
            max_attempts=int(get("META_LEAD_MAX_ATTEMPTS", defaults.max_attempts)),
            backoff=float(get("META_LEAD_RETRY_BACKOFF", defaults.backoff)),
            max_backoff=float(get("META_LEAD_MAX_BACKOFF", defaults.max_backoff)),
            lease=float(get("META_LEAD_CLAIM_SECONDS", defaults.lease)))

    def get_dependency(self, worker_ctx):
        return LeadAdReader(self.base_url, self.token, self.policy)


class LeadAdReader:
    def __init__(self, base_url, token, policy):
        self.base_url = base_url
        self.token = token
        self.policy = policy

    def fetch(self, leadgen_id):
        """The Graph lead `leadgen_id`, one attempt; raises a GraphError
        (GraphRefused when no token is configured)."""
        client = GraphClient(self.base_url, self.token, timeout=(3, 10), max_attempts=1)
        try:
            return client.get(leadgen_id, {"fields": GRAPH_FIELDS})
        finally:
            client.close()
