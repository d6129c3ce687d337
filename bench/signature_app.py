"""The webhook benchmark's baseline: POST /api/webhooks/meta answered by
Falcon after checking the delivery's signature, with nothing queued.

It checks X-Hub-Signature-256 over the raw body with the gateway's own
function (gateway.resources.webhooks.signature_matches), parses the JSON and
counts the leadgen changes the same way, and answers 200 {"received": n}: the
floor of the HTTP + HMAC part. What the gateway's answer costs beyond this
is its middleware and the confirmed, durable hand-over to the broker.

    PYTHONPATH=libs:services/gateway:bench gunicorn -k gthread ... signature_app:app
"""
import json

import falcon

from crm_common.config import Settings
from gateway.http import MAX_BODY_BYTES
from gateway.resources.webhooks import SIGNATURE_HEADER, leadgen_changes, signature_matches

settings = Settings.from_env()


class Deliveries:
    def __init__(self, secret):
        self.secret = secret

    def on_post(self, req, resp):
        raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge()
        if not signature_matches(self.secret, raw, req.get_header(SIGNATURE_HEADER)):
            raise falcon.HTTPForbidden()
        try:
            delivery = json.loads(raw)
        except ValueError:
            raise falcon.HTTPBadRequest()
        if not isinstance(delivery, dict):
            raise falcon.HTTPBadRequest()
        resp.media = {"received": len(leadgen_changes(delivery))}


class Health:
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


app = falcon.App()
app.add_route("/api/webhooks/meta", Deliveries(settings.meta_app_secret))
app.add_route("/api/health", Health())
