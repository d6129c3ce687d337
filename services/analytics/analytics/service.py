"""The analytics service: the dashboard's figures, read from aggregates it
keeps from the leads and campaigns events (docs/analytics.md)."""
import logging

import eventlet
from nameko.events import event_handler
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from analytics import handlers
from analytics.dependencies import AnalyticsDatabase
from analytics.exceptions import InvalidQuery

log = logging.getLogger(__name__)

EXPECTED = (InvalidQuery, Unavailable)
# How long an event waits before it is given back to the queue when the
# database is down, so an outage is not a tight redelivery loop.
REDELIVERY_PAUSE = 1.0


class AnalyticsService:
    name = "analytics"

    db = AnalyticsDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def stats(self, start, end):
        with self.db.transaction() as tx:
            return handlers.stats(tx, start, end)

    @rpc(expected_exceptions=EXPECTED)
    def revenue_chart(self, start, end, interval="day"):
        with self.db.transaction() as tx:
            return handlers.revenue_chart(tx, start, end, interval)

    @rpc(expected_exceptions=EXPECTED)
    def sources_chart(self, start, end):
        with self.db.transaction() as tx:
            return handlers.sources_chart(tx, start, end)

    # ---- events: one entrypoint per type, all folded by one function --------
    # requeue_on_error gives a failed event back to the queue; redelivery is
    # harmless (de-duplicated on event_id). A malformed event is logged and
    # dropped instead: requeued it would loop forever.

    def _lead_event(self, event_type, payload):
        try:
            with self.db.transaction() as tx:
                handlers.apply_lead_event(tx, event_type, payload)
        except handlers.MalformedEvent as exc:
            log.error("dropping leads.%s: %s", event_type, exc)
        except Unavailable:
            eventlet.sleep(REDELIVERY_PAUSE)
            raise

    @event_handler("leads", "lead_created", requeue_on_error=True)
    def on_lead_created(self, payload):
        self._lead_event("lead_created", payload)

    @event_handler("leads", "lead_updated", requeue_on_error=True)
    def on_lead_updated(self, payload):
        self._lead_event("lead_updated", payload)

    @event_handler("leads", "lead_status_changed", requeue_on_error=True)
    def on_lead_status_changed(self, payload):
        self._lead_event("lead_status_changed", payload)

    @event_handler("leads", "lead_deleted", requeue_on_error=True)
    def on_lead_deleted(self, payload):
        self._lead_event("lead_deleted", payload)

    @event_handler("campaigns", "campaign_synced", requeue_on_error=True)
    def on_campaign_synced(self, payload):
        try:
            with self.db.transaction() as tx:
                handlers.apply_campaign_synced(tx, payload)
        except handlers.MalformedEvent as exc:
            log.error("dropping campaigns.campaign_synced: %s", exc)
        except Unavailable:
            eventlet.sleep(REDELIVERY_PAUSE)
            raise
