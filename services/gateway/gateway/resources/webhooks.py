"""Meta's Lead Ads webhook (contract section 4; docs/lead-ads.md).

The gateway only checks and hands over: the signature over the raw bytes
first, then the JSON, then one durable, confirmed message per delivery
holding its `leadgen` changes (the `gateway.meta_leadgen_received` event,
consumed by the leads service). Meta hears 200 only once the broker has the
message in a durable queue; if it cannot take it, a 503 makes Meta deliver
again later. Fetching the lead from the Graph API happens behind the queue,
so the answer stays fast whatever Meta's API is doing.
"""
import hashlib
import hmac
import logging

import falcon

from gateway.errors import JsonError, bad_request, unavailable
from gateway.http import parse_json, read_body
from gateway.middleware import request_context
from gateway.openapi import operation
from gateway.rpc import ServiceUnavailable
from gateway.schemas.webhooks import Acknowledged, Handshake, WebhookDelivery

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="
EVENT_SOURCE = "gateway"
EVENT_TYPE = "meta_leadgen_received"


def forbidden(description):
    return JsonError(falcon.HTTP_403, description)


def signature_matches(secret, raw, header):
    """Whether `header` is `sha256=<hex HMAC-SHA256 of raw with secret>`,
    compared in constant time."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    given = header[len(SIGNATURE_PREFIX):].strip().lower()
    return hmac.compare_digest(expected.encode(), given.encode("ascii", "replace"))


def leadgen_changes(delivery):
    """The `value` of every `leadgen` change of a delivery, each with its
    entry's page id when the value lacks one; other fields are ignored."""
    found = []
    entries = delivery.get("entry")
    if not isinstance(entries, list):
        return found
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            continue
        for change in entry["changes"]:
            if (isinstance(change, dict) and change.get("field") == "leadgen"
                    and isinstance(change.get("value"), dict)):
                value = dict(change["value"])
                value.setdefault("page_id", entry.get("id"))
                found.append(value)
    return found


class MetaWebhook:
    def __init__(self, settings, client, timeout):
        self.verify_token = settings.meta_verify_token
        self.app_secret = settings.meta_app_secret
        # During a rotation (docs/lead-ads.md) a delivery signed with the
        # previous secret is still genuine.
        self.secrets = tuple(s for s in (settings.meta_app_secret,
                                         settings.meta_app_secret_previous) if s)
        self.client = client
        self.timeout = timeout

    @operation("Meta's subscription handshake: echoes hub.challenge when hub.verify_token "
               "is META_VERIFY_TOKEN", query=Handshake, public=True, errors=("403",),
               content_type="text/plain", response=str, tags=["webhooks"])
    def on_get(self, req, resp):
        mode = req.get_param("hub.mode")
        token = req.get_param("hub.verify_token") or ""
        challenge = req.get_param("hub.challenge")
        if not (self.verify_token and mode == "subscribe" and challenge and hmac.compare_digest(
                token.encode(), self.verify_token.encode())):
            raise forbidden("The verify token does not match.")
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = challenge

    # No idempotency key: Meta sends none, and leads keeps one lead per
    # leadgen_id however often a delivery comes.
    @operation("A Lead Ads delivery from Meta, signed with X-Hub-Signature-256 (HMAC-SHA256 of "
               "the raw body with META_APP_SECRET); each leadgen change becomes one lead",
               body=WebhookDelivery, response=Acknowledged, public=True,
               errors=("400", "403", "413"), tags=["webhooks"], idempotency_key=False)
    def on_post(self, req, resp):
        raw = read_body(req)
        if not self.app_secret:
            # Unverifiable: refuse so that Meta keeps the delivery and retries.
            log.error("META_APP_SECRET is not set: webhook deliveries cannot be verified")
            raise unavailable("The webhook is not configured; try again later.")
        header = req.get_header(SIGNATURE_HEADER)
        # a list, not a generator: every secret is tried, whichever matches
        if not any([signature_matches(secret, raw, header) for secret in self.secrets]):
            raise forbidden("The X-Hub-Signature-256 signature is missing or does not match.")
        delivery = parse_json(raw)
        if not isinstance(delivery, dict):
            raise bad_request("The body is not a webhook delivery (a JSON object).")
        changes = leadgen_changes(delivery)
        if changes:
            message = {"object": delivery.get("object"), "changes": changes,
                       "request_id": req.context.request_id}
            try:
                self.client.dispatch(EVENT_SOURCE, EVENT_TYPE, message, consumer="leads",
                                     timeout=self.timeout, context=request_context(req))
            except ServiceUnavailable as exc:
                log.warning("lead ad delivery not queued: %s", exc)
                raise unavailable("The lead-ad intake is unavailable; deliver again later.")
            log.info("lead ad delivery queued (%d leadgen change(s))", len(changes),
                     extra={"request_id": req.context.request_id})
        resp.media = {"received": len(changes)}
