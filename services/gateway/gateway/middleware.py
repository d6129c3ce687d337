"""Cross-cutting request handling: request ids and access logs, the body
size limit, and API-key authentication."""
import logging
import re
import time
import uuid

import falcon
import sqlalchemy as sa

from crm_common import logs
from gateway import metrics
from gateway.errors import JsonError, unavailable
from gateway.http import MAX_BODY_BYTES, too_large

log = logging.getLogger("gateway.access")

PUBLIC_PATHS = frozenset({"/api/health", "/api/openapi.json", "/api/webhooks/meta"})
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestContext:
    """Gives every request an id (the client's X-Request-ID if sane) that is
    echoed back and passed on to the services as the correlation id of
    everything the request causes (crm_common.telemetry); logs one line per
    request, and counts and times it (gateway/metrics.py)."""

    def __init__(self, router=None):
        self.router = router

    def route_of(self, req):
        """The request's route template, also for a request refused before
        routing (401, 413, preflights): None when no route serves the path."""
        if req.uri_template or self.router is None:
            return req.uri_template
        found = self.router.find(req.path, req)
        return found[3] if found else None

    def process_request(self, req, resp):
        given = req.get_header("X-Request-ID") or ""
        req.context.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        req.context.started = time.monotonic()
        # every line written while serving it names the request
        logs.bind(service="gateway", request_id=req.context.request_id,
                  correlation_id=req.context.request_id)

    def process_response(self, req, resp, resource, req_succeeded):
        resp.set_header("X-Request-ID", req.context.request_id)
        elapsed = time.monotonic() - req.context.started
        status = int(resp.status[:3])
        route = self.route_of(req)
        metrics.observe_request(req.method, route, status, elapsed)
        log.info("%s %s %s", req.method, req.path, status, extra={
            "method": req.method, "route": route or req.path, "status": status,
            "duration_ms": round(elapsed * 1000, 1)})
        logs.unbind()


def request_context(req):
    """The nameko context of a call made for `req`: the request id as the
    correlation id (crm_common.telemetry), and as the root of nameko's
    call-id stack."""
    return {logs.CORRELATION_CONTEXT_KEY: req.context.request_id,
            "call_id_stack": ["gateway.http.%s" % req.context.request_id]}


class BodyLimit:
    def process_request(self, req, resp):
        if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
            raise too_large(req)


def presented_key(req):
    auth = req.get_header("Authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return req.get_header("X-API-Key") or None


class ApiKeyAuth:
    """Every /api route but the public ones needs the key (header, or `?key=`
    for the event stream, which EventSource cannot give headers)."""

    def __init__(self, keys, query_key_paths=()):
        self.keys = keys
        self.query_key_paths = frozenset(query_key_paths)

    def process_request(self, req, resp):
        if req.method == "OPTIONS" or req.path in PUBLIC_PATHS or not req.path.startswith("/api/"):
            return
        key = presented_key(req)
        if key is None and req.path in self.query_key_paths:
            key = req.get_param("key")
        try:
            ok = self.keys.verify(key)
        except sa.exc.SQLAlchemyError:
            log.warning("key store unavailable", exc_info=True)
            raise unavailable("The key store is unavailable; try again shortly.")
        if not ok:
            raise falcon.HTTPUnauthorized(
                title="Unauthorized",
                description="A valid API key is required (Authorization: Bearer <key> or X-API-Key).",
                challenges=['Bearer realm="crm"'])


class Cors:
    """CORS for the origins in CRM_CORS_ORIGINS (`*` allows any). Preflights
    are answered here, for any API path, before authentication."""

    METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
    ALLOWED_HEADERS = "Authorization, Content-Type, X-API-Key, X-Request-ID, Idempotency-Key"
    EXPOSED = "X-Total-Count, Link, Location, X-Request-ID, Retry-After"

    def __init__(self, origins):
        self.any = "*" in origins
        self.origins = frozenset(origins)

    def _allowed(self, origin):
        return origin and (self.any or origin in self.origins)

    def process_request(self, req, resp):
        origin = req.get_header("Origin")
        if req.method != "OPTIONS" or not req.get_header("Access-Control-Request-Method"):
            return
        resp.status = falcon.HTTP_204
        resp.complete = True
        if self._allowed(origin):
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Allow-Methods", self.METHODS)
            resp.set_header("Access-Control-Allow-Headers",
                            req.get_header("Access-Control-Request-Headers") or self.ALLOWED_HEADERS)
            resp.set_header("Access-Control-Max-Age", "600")
            resp.set_header("Vary", "Origin")

    def process_response(self, req, resp, resource, req_succeeded):
        origin = req.get_header("Origin")
        if origin:
            resp.set_header("Vary", "Origin")      # the answer depends on the origin
        if self._allowed(origin) and req.method != "OPTIONS":
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Expose-Headers", self.EXPOSED)
