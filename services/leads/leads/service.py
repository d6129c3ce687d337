"""The leads service: RPC, event and timer entrypoints that translate to handlers."""
import logging

from nameko.exceptions import RemoteError
from nameko.timer import timer

from crm_common import logs
from crm_common.entrypoints import rpc
from crm_common.errors import Unavailable, ValidationFailed
from crm_common.graph import GraphError, GraphRefused
from crm_common.reliable_events import reliable_event_handler
from crm_common.rpc import RpcClient
from crm_common.telemetry import Telemetry
from leads import handlers, lead_ads
from leads.dependencies import LeadAdsGraph, LeadsDatabase, remote_timeout
from leads.exceptions import DuplicateEmail, InvalidLead, LeadNotFound

log = logging.getLogger(__name__)

# ValidationFailed: an idempotency key reused for another request.
EXPECTED = (LeadNotFound, DuplicateEmail, InvalidLead, Unavailable, ValidationFailed)


class LeadsService:
    name = "leads"
    telemetry = Telemetry()

    db = LeadsDatabase()
    contacts = RpcClient("contacts", timeout=remote_timeout())
    graph = LeadAdsGraph()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def create_lead(self, data):
        return self.db.idempotent("create_lead", [data],
                                  lambda tx: handlers.create_lead(tx, data))

    @rpc(expected_exceptions=EXPECTED)
    def get_lead(self, lead_id):
        with self.db.read() as tx:
            return handlers.get_lead(tx, lead_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_leads(self, query=None):
        with self.db.read() as tx:
            return handlers.list_leads(tx, query)

    @rpc(expected_exceptions=EXPECTED)
    def export_leads(self, after_id=None, limit=1000):
        """Every lead, a page at a time in id order (keyset), for rebuilds:
        {"items": [lead...], "next": <id to pass as after_id, or None>}."""
        with self.db.read() as tx:
            return handlers.export_leads(tx, after_id, limit)

    @rpc(expected_exceptions=EXPECTED)
    def update_lead(self, lead_id, changes):
        return self.db.idempotent("update_lead", [lead_id, changes],
                                  lambda tx: handlers.update_lead(tx, lead_id, changes))

    @rpc(expected_exceptions=EXPECTED)
    def delete_lead(self, lead_id):
        return self.db.idempotent("delete_lead", [lead_id],
                                  lambda tx: handlers.delete_lead(tx, lead_id))

    @rpc(expected_exceptions=EXPECTED)
    def list_activity(self, lead_id, limit=100, offset=0):
        with self.db.read() as tx:
            return handlers.list_activity(tx, lead_id, limit, offset)

    @rpc(expected_exceptions=EXPECTED)
    def log_activity(self, lead_id, data):
        return self.db.idempotent("log_activity", [lead_id, data],
                                  lambda tx: handlers.log_activity(tx, lead_id, data))

    @rpc(expected_exceptions=EXPECTED)
    def convert_lead(self, lead_id):
        """Make a contact of the lead (or find the one already made), and note
        it on the lead's timeline. Returns {"contact", "created"}.

        The contact is created first, by the contacts service, which keeps one
        contact per lead; the note follows and is recorded once. If this
        process dies in between, converting again finds the contact and
        records the note then. The idempotency key goes on to contacts (nameko
        passes the context on), which answers a repeated create_from_lead as
        it did the first time, so a retried conversion still says "created".
        """
        def convert(tx):
            lead = handlers.get_lead(tx, lead_id)
            try:
                result = self.contacts.create_from_lead(lead)
            except RemoteError as exc:
                raise InvalidLead("The lead cannot become a contact: %s" % exc.value)
            handlers.record_conversion(tx, lead["id"], result["contact"])
            return result

        return self.db.idempotent("convert_lead", [lead_id], convert)

    # ---- Meta lead ads (leads/lead_ads.py, docs/lead-ads.md) -----------------

    @reliable_event_handler("gateway", "meta_leadgen_received")
    def receive_lead_ads(self, delivery):
        """A webhook delivery the gateway accepted: keep each submission (then
        the message may go), and try to make its lead at once."""
        with self.db.transaction() as tx:
            fresh = lead_ads.record_submissions(tx, delivery, self.db.correlation_id)
        for leadgen_id in fresh:
            self._make_lead_ad(leadgen_id)

    @timer(interval=1.0)
    def fetch_due_lead_ads(self):
        """Submissions whose next attempt has come (after a failed fetch, or
        left claimed by a process that died)."""
        try:
            with self.db.transaction() as tx:
                ids = lead_ads.due(tx)
        except Unavailable:
            return              # the unit of work logged it; the next tick tries again
        for leadgen_id in ids:
            self._make_lead_ad(leadgen_id)

    def _make_lead_ad(self, leadgen_id):
        """One attempt at a submission; failures are recorded on it (and
        logged), never raised: the row is the state, retried when due."""
        policy = self.graph.policy
        try:
            with self.db.transaction() as tx:
                attempt = lead_ads.claim(tx, leadgen_id, policy)
            if attempt is None:
                return None              # another instance has it, or it is done
            # the work goes on under the webhook delivery's correlation id
            # (the timer's own when a submission has none)
            with logs.bound(**dict(logs.current(), correlation_id=attempt.correlation_id
                                   or self.db.correlation_id)):
                return self._fetch_lead_ad(leadgen_id, policy, attempt.correlation_id)
        except Unavailable:
            # The database went away: the claim lapses and the timer retries.
            log.warning("lead ad %s: database unavailable; will retry", leadgen_id)
        return None

    def _fetch_lead_ad(self, leadgen_id, policy, correlation_id):
        """Fetch a claimed submission and make its lead, or record why not;
        the events carry `correlation_id` (the delivery's) when there is one."""
        def transaction():
            return self.db.transaction(correlation_id=correlation_id)

        try:
            graph_lead = self.graph.fetch(leadgen_id)
        except GraphError as exc:
            with transaction() as tx:
                lead_ads.record_failure(tx, leadgen_id, exc, isinstance(exc, GraphRefused), policy)
            return None
        try:
            with transaction() as tx:
                return lead_ads.complete(tx, leadgen_id, graph_lead)
        except lead_ads.UnusableSubmission as exc:
            with transaction() as tx:
                lead_ads.record_failure(tx, leadgen_id, exc, True, policy, graph_lead)
        except Unavailable:
            raise
        except Exception as exc:
            # A bug, not Meta: counted as an attempt, so it stops (failed,
            # listed) instead of looping; the traceback is in the log.
            log.exception("lead ad %s: could not make the lead", leadgen_id)
            with transaction() as tx:
                lead_ads.record_failure(tx, leadgen_id, exc, False, policy, graph_lead)
        return None

    @rpc(expected_exceptions=EXPECTED)
    def list_lead_ads(self, status=None, limit=100, offset=0):
        """Lead-ad submissions, newest first (status: pending, done, failed)."""
        with self.db.read() as tx:
            return lead_ads.list_submissions(tx, status, limit, offset)

    @rpc(expected_exceptions=EXPECTED)
    def retry_failed_lead_ads(self, leadgen_ids=None):
        """Failed submissions (those named, or all) become pending, due now."""
        with self.db.transaction() as tx:
            return lead_ads.retry(tx, leadgen_ids)
