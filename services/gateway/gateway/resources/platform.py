"""Health, the OpenAPI document, settings."""
from concurrent.futures import ThreadPoolExecutor

import falcon

from gateway.keys import mask
from gateway.openapi import document, operation
from gateway.rpc import RemoteError, ServiceUnavailable
from gateway.schemas.settings import Config, Health, NewKey

SERVICES = ("leads", "contacts", "tasks", "campaigns", "analytics")


class HealthCheck:
    """200 when every service answers a ping (each checks its database)."""

    def __init__(self, client, timeout):
        self.client = client
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=len(SERVICES), thread_name_prefix="health")

    def _ping(self, service):
        try:
            self.client.call(service, "ping", timeout=self.timeout)
            return "ok"
        except ServiceUnavailable:
            return "unavailable"
        except RemoteError:
            return "error"

    @operation("Health of the gateway and every service", response=Health, public=True,
               tags=["platform"], other_responses={
                   "503": ("Degraded: the services that do not answer are marked", Health)})
    def on_get(self, req, resp):
        states = dict(zip(SERVICES, self.pool.map(self._ping, SERVICES)))
        healthy = all(state == "ok" for state in states.values())
        resp.media = {"status": "ok" if healthy else "degraded", "services": states}
        if not healthy:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "5")


class OpenApiDocument:
    def __init__(self, routes):
        self.routes = routes
        self._doc = None

    @operation("This document", public=True, tags=["platform"])
    def on_get(self, req, resp):
        if self._doc is None:
            self._doc = document(self.routes)
        resp.media = self._doc


def masked_secret(value):
    if not value:
        return None
    return "\u2022" * 4 + (value[-4:] if len(value) >= 12 else "")


class SettingsConfig:
    def __init__(self, keys, settings, rpc):
        self.keys = keys
        self.settings = settings
        self.rpc = rpc

    @operation("Settings, with every secret masked", response=Config, tags=["settings"])
    def on_get(self, req, resp):
        s = self.settings
        resp.media = {
            "apiKey": self.keys.masked() or mask("", ""),
            "webhookUrl": s.public_url + "/api/webhooks/meta",
            "metaVerifyToken": masked_secret(s.meta_verify_token),
            "metaAppSecretSet": bool(s.meta_app_secret),
            "metaAdAccountId": s.meta_ad_account_id,
            "lastSync": self.rpc(req, "campaigns", "last_sync"),
        }


class RegenerateKey:
    def __init__(self, keys):
        self.keys = keys

    # No idempotency key: no service is asked, and a retry's new key is as
    # good an answer as the lost one (only the newest key works).
    @operation("Replace the API key; the old one stops working at once", response=NewKey,
               tags=["settings"], idempotency_key=False)
    def on_post(self, req, resp):
        resp.media = {"apiKey": self.keys.regenerate()}
