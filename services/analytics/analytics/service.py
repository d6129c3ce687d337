"""The analytics service: the dashboard's figures, read from aggregates it
keeps from the leads and campaigns events (docs/analytics.md)."""
import logging

from crm_common.entrypoints import rpc
from crm_common.errors import Unavailable
from crm_common.reliable_events import reliable_event_handler
from crm_common.telemetry import Telemetry
from analytics import handlers
from analytics.dependencies import AnalyticsDatabase
from analytics.exceptions import InvalidQuery

log = logging.getLogger(__name__)

EXPECTED = (InvalidQuery, Unavailable)
# Retries after 1, 2, 4 ... 60 s (about two minutes in all), then parked.
RETRIES = dict(max_attempts=8, retry_delay=1.0, max_delay=60.0,
               park_on=(handlers.MalformedEvent,))


class AnalyticsService:
    name = "analytics"
    telemetry = Telemetry()

    db = AnalyticsDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def stats(self, start, end):
        with self.db.read() as tx:
            return handlers.stats(tx, start, end)

    @rpc(expected_exceptions=EXPECTED)
    def revenue_chart(self, start, end, interval="day"):
        with self.db.read() as tx:
            return handlers.revenue_chart(tx, start, end, interval)

    @rpc(expected_exceptions=EXPECTED)
    def sources_chart(self, start, end):
        with self.db.read() as tx:
            return handlers.sources_chart(tx, start, end)

    # ---- events: one entrypoint per type, all folded by one function --------
    # A failure is retried after a growing delay, then parked where an operator
    # sees it (`python -m crm_common.parked list`); redelivery is harmless
    # (de-duplicated on event_id). A malformed event is parked at once: retried
    # it could never succeed.

    def _lead_event(self, event_type, payload):
        with self.db.transaction() as tx:
            handlers.apply_lead_event(tx, event_type, payload)

    @reliable_event_handler("leads", "lead_created", **RETRIES)
    def on_lead_created(self, payload):
        self._lead_event("lead_created", payload)

    @reliable_event_handler("leads", "lead_updated", **RETRIES)
    def on_lead_updated(self, payload):
        self._lead_event("lead_updated", payload)

    @reliable_event_handler("leads", "lead_status_changed", **RETRIES)
    def on_lead_status_changed(self, payload):
        self._lead_event("lead_status_changed", payload)

    @reliable_event_handler("leads", "lead_deleted", **RETRIES)
    def on_lead_deleted(self, payload):
        self._lead_event("lead_deleted", payload)

    @reliable_event_handler("campaigns", "campaign_synced", **RETRIES)
    def on_campaign_synced(self, payload):
        with self.db.transaction() as tx:
            handlers.apply_campaign_synced(tx, payload)
