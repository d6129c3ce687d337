"""The campaigns service's dependencies."""
import os
from pathlib import Path

import sqlalchemy as sa
from nameko.extensions import DependencyProvider

from campaigns.graph import GraphClient
from campaigns.models import SyncState
from crm_common import telemetry
from crm_common.config import Settings
from crm_common.db import Database

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


SYNC_STATUSES = ("running", "ok", "error")


def sync_metrics(engine):
    """The Meta sync's state for /metrics: when the last successful sync
    finished, and the latest one's status and time (no sample before the
    first sync)."""
    state = SyncState.__table__
    with engine.connect() as conn:
        row = conn.execute(sa.select(state.c.status, sa.extract("epoch", state.c.at),
                                     sa.extract("epoch", state.c.last_ok_at))
                           .where(state.c.id == 1)).first()
    if row is None:
        return []
    status, at, last_ok_at = row
    families = [
        telemetry.gauge("crm_meta_sync_last_attempt_timestamp_seconds",
                        "When the latest Meta sync started or ended (Unix time).", [],
                        [([], float(at))]),
        telemetry.gauge("crm_meta_sync_status", "The latest Meta sync's status (1: this one).",
                        ["status"], [([s], 1.0 if s == status else 0.0) for s in SYNC_STATUSES]),
    ]
    if last_ok_at is not None:
        families.append(telemetry.gauge(
            "crm_meta_sync_last_success_timestamp_seconds",
            "When the last successful Meta sync finished (Unix time).", [],
            [([], float(last_ok_at))]))
    return families


class CampaignsDatabase(Database):
    """The service's database; its Meta sync state is also a metrics source."""

    def __init__(self, **options):
        super().__init__(ALEMBIC_DIR, **options)

    def setup(self):
        super().setup()
        telemetry.add_source(("campaigns", "meta_sync"), lambda: sync_metrics(self.engine))

    def stop(self):
        telemetry.remove_source(("campaigns", "meta_sync"))
        super().stop()


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
