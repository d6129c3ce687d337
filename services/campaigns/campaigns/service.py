"""The campaigns service: RPC entrypoints that translate to handlers. It
answers lookups (the tasks service checks campaign ids with them) and syncs
campaigns and their daily insights from Meta's Graph API (`sync_now`)."""
import datetime as dt
import logging

import sqlalchemy as sa
from nameko.timer import timer

from campaigns import graph, handlers
from campaigns.dependencies import CampaignsDatabase, GraphApi
from campaigns.exceptions import CampaignNotFound, GraphRefused, InvalidCampaignQuery, SyncRunning
from crm_common.config import Settings
from crm_common.entrypoints import rpc
from crm_common.errors import Unavailable
from crm_common.telemetry import Telemetry

log = logging.getLogger(__name__)

EXPECTED = (CampaignNotFound, InvalidCampaignQuery, Unavailable)
SYNC_EXPECTED = (GraphRefused, SyncRunning, Unavailable)
# pg_try_advisory_xact_lock key: one sync at a time, across every instance.
SYNC_LOCK_KEY = 0x63616D70   # "camp"
SYNC_INTERVAL = Settings.from_env().meta_sync_interval


class CampaignsService:
    name = "campaigns"
    telemetry = Telemetry()

    db = CampaignsDatabase()
    graph = GraphApi()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def get_campaign(self, campaign_id):
        with self.db.read() as tx:
            return handlers.get_campaign(tx, campaign_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_campaigns(self, query=None):
        with self.db.read() as tx:
            return handlers.list_campaigns(tx, query)

    @rpc(expected_exceptions=EXPECTED)
    def get_campaign_detail(self, campaign_id):
        with self.db.read() as tx:
            return handlers.get_campaign_detail(tx, campaign_id)

    @rpc(expected_exceptions=SYNC_EXPECTED)
    def sync_now(self):
        """Read campaigns and daily insights from the Graph API and store them.

        Two syncs never run at once: a transaction-level PostgreSQL advisory
        lock is held for the whole sync (a second call raises SyncRunning; the
        lock goes with the transaction, even if this process dies). The first
        sync (no day stored yet) asks for every day (`date_preset=maximum`);
        later ones for the last META_SYNC_WINDOW_DAYS days. Everything is read
        before anything is written, so a refused or failed sync writes nothing.
        Its outcome is kept for the settings (`last_sync`).
        Returns {"status": "ok", "campaigns": N, "days": N, "finishedAt"}.
        """
        with self.db.transaction() as lock:
            held = lock.session.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"),
                                        {"key": SYNC_LOCK_KEY}).scalar()
            if not held:
                raise SyncRunning()
            self._record("running")
            try:
                with self.db.transaction() as tx:
                    first = handlers.is_first_sync(tx)
                campaigns, days = self._read_graph(first)
                with self.db.transaction() as tx:
                    result = handlers.apply_sync(tx, campaigns, days)
            except Exception as exc:
                self._record("error", str(exc) or type(exc).__name__)
                raise
            self._record("ok")
            return result

    @timer(interval=SYNC_INTERVAL)
    def sync_on_schedule(self):
        """Every META_SYNC_INTERVAL seconds (when Meta is configured): a sync,
        skipped while another one runs; its outcome is in `last_sync`."""
        if not self.graph.configured():
            return
        try:
            self.sync_now()
        except SyncRunning:
            log.info("scheduled sync skipped: another sync is running")
        except (GraphRefused, Unavailable) as exc:
            log.warning("scheduled sync failed: %s", exc)

    @rpc(expected_exceptions=Unavailable)
    def last_sync(self):
        """{"at", "status": running|ok|error, "error"} of the latest sync, or None."""
        with self.db.read() as tx:
            return handlers.last_sync(tx)

    def _record(self, status, error=None):
        with self.db.transaction() as tx:
            handlers.record_sync(tx, status, error)

    def _read_graph(self, first):
        client = None
        try:
            client = self.graph.client()
            campaigns = client.campaigns()
            if first:
                days = client.insights()
            else:
                until = dt.datetime.now(dt.timezone.utc).date()
                days = client.insights(until - dt.timedelta(days=self.graph.window_days - 1), until)
            return campaigns, days
        except graph.GraphRefused as exc:
            log.warning("meta refused the sync: %s", exc)
            raise GraphRefused({"description": "Meta refused the sync: %s" % exc,
                                "code": exc.code})
        except graph.GraphError as exc:
            log.warning("meta unavailable for the sync: %s", exc)
            raise GraphRefused({"description": "The Graph API is unavailable: %s" % exc,
                                "code": exc.code})
        except ValueError as exc:       # not configured (no ad account)
            raise GraphRefused({"description": "Meta is not configured: %s" % exc})
        finally:
            if client is not None:
                client.close()
