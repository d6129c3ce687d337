"""The gateway's WSGI application: `create_app(settings, rpc, keys)` for tests,
`gateway.wsgi:app` for gunicorn."""
import falcon

from crm_common.idempotency import CONTEXT_KEY as IDEMPOTENCY_CONTEXT_KEY
from gateway import errors
from gateway.idempotency import IdempotencyKeys
from gateway.metrics import MetricsEndpoint
from gateway.middleware import ApiKeyAuth, BodyLimit, Cors, RequestContext, request_context
from gateway.openapi import Routes
from gateway.resources.campaigns import CampaignItem, Campaigns, CampaignSync
from gateway.resources.contacts import ContactHistory, ContactItem, Contacts
from gateway.resources.dashboard import DashboardStats, RevenueChart, SourcesChart
from gateway.resources.events import EventStream
from gateway.resources.leads import LeadActivity, LeadConversion, LeadItem, Leads
from gateway.resources.platform import HealthCheck, OpenApiDocument, RegenerateKey, SettingsConfig
from gateway.resources.tasks import TaskItem, Tasks
from gateway.resources.webhooks import MetaWebhook
from gateway.streams import LeadStreamHub

HEALTH_PING_TIMEOUT = 2.0
EVENT_STREAM = "/api/events/stream"


class ServiceCaller:
    """What resources call: `rpc(req, service, method, *args)`. It passes the
    request id on to the service (nameko's call-id stack), and a write's
    idempotency key (gateway/idempotency.py)."""

    def __init__(self, client):
        self.client = client

    def __call__(self, req, service, method, *args, **kwargs):
        context = request_context(req)
        if req.context.get("idempotency_key"):
            context[IDEMPOTENCY_CONTEXT_KEY] = req.context.idempotency_key
        return self.client.call(service, method, *args, context=context, **kwargs)


class NotFoundSink:
    """Unknown routes: the contract's JSON 404."""

    def __call__(self, req, resp, **kwargs):
        raise falcon.HTTPNotFound(description="No route %s %s." % (req.method, req.path))


def create_app(settings, client, keys, streams=None):
    """`streams` is the process's LeadStreamHub (one is made when not given;
    it connects to the broker only when a stream opens)."""
    streams = streams if streams is not None else LeadStreamHub(settings.amqp_uri)
    router = falcon.routing.CompiledRouter()
    app = falcon.App(router=router,
                     middleware=[RequestContext(router), Cors(settings.cors_origins), BodyLimit(),
                                 ApiKeyAuth(keys, query_key_paths={EVENT_STREAM}),
                                 IdempotencyKeys()])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    rpc = ServiceCaller(client)

    routes = Routes(app)
    routes.add("/api/health", HealthCheck(client, min(settings.rpc_timeout, HEALTH_PING_TIMEOUT)))
    routes.add("/api/openapi.json", OpenApiDocument(routes))
    routes.add("/api/settings/config", SettingsConfig(keys, settings, rpc))
    routes.add("/api/settings/regenerate-key", RegenerateKey(keys))
    routes.add("/api/leads", Leads(rpc))
    routes.add("/api/leads/{id}", LeadItem(rpc))
    routes.add("/api/leads/{id}/activity", LeadActivity(rpc))
    routes.add("/api/leads/{id}/convert", LeadConversion(rpc))
    routes.add("/api/contacts", Contacts(rpc))
    routes.add("/api/contacts/{id}", ContactItem(rpc))
    routes.add("/api/contacts/{id}/history", ContactHistory(rpc))
    routes.add("/api/tasks", Tasks(rpc))
    routes.add("/api/tasks/{id}", TaskItem(rpc))
    routes.add("/api/campaigns", Campaigns(rpc))
    routes.add("/api/campaigns/sync", CampaignSync(rpc))
    routes.add("/api/campaigns/{id}", CampaignItem(rpc))
    routes.add("/api/dashboard/stats", DashboardStats(rpc))
    routes.add("/api/dashboard/charts/revenue", RevenueChart(rpc))
    routes.add("/api/dashboard/charts/sources", SourcesChart(rpc))
    routes.add(EVENT_STREAM, EventStream(streams, settings.sse_max_streams, settings.sse_heartbeat))
    routes.add("/api/webhooks/meta", MetaWebhook(settings, client, settings.rpc_timeout))
    app.add_route("/metrics", MetricsEndpoint())      # for Prometheus; not in the API document
    app.add_sink(NotFoundSink(), prefix="/")
    return app
