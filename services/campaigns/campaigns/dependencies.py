"""The campaigns service's dependencies."""
import os
from pathlib import Path

from nameko.extensions import DependencyProvider

from campaigns.graph import GraphClient
from crm_common.config import Settings
from crm_common.db import Database

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def CampaignsDatabase():
    return Database(ALEMBIC_DIR)


class GraphApi(DependencyProvider):
    """A factory of Graph clients configured from the environment
    (META_GRAPH_URL, META_ACCESS_TOKEN, META_AD_ACCOUNT_ID); a container's
    config may override each name (tests), and tune the retries:
    META_MAX_ATTEMPTS (4), META_RETRY_BACKOFF (2 s), META_THROTTLE_BACKOFF (5 s),
    META_MAX_BACKOFF (60 s); META_SYNC_WINDOW_DAYS (28) is the rolling window of
    days re-read after the first sync."""

    def options(self):
        env = Settings.from_env()
        config = self.container.config

        def get(name, default):
            return config.get(name, os.environ.get(name) or default)

        return {"base_url": get("META_GRAPH_URL", env.meta_graph_url),
                "token": get("META_ACCESS_TOKEN", env.meta_access_token),
                "account_id": get("META_AD_ACCOUNT_ID", env.meta_ad_account_id),
                "max_attempts": int(get("META_MAX_ATTEMPTS", 4)),
                "backoff": float(get("META_RETRY_BACKOFF", 2)),
                "throttle_backoff": float(get("META_THROTTLE_BACKOFF", 5)),
                "max_backoff": float(get("META_MAX_BACKOFF", 60)),
                "window_days": int(get("META_SYNC_WINDOW_DAYS", 28))}

    def get_dependency(self, worker_ctx):
        return GraphFactory(self.options())


class GraphFactory:
    def __init__(self, options):
        options = dict(options)
        self.window_days = options.pop("window_days")
        self.options = options

    def configured(self):
        """Whether there is an ad account and a token to sync with."""
        return bool(self.options.get("account_id") and self.options.get("token"))

    def client(self):
        return GraphClient(**self.options)
