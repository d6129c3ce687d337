"""Meta's Lead Ads webhook at the gateway: the handshake, signatures over the
raw bytes, and the hand-over of leadgen changes to the durable queue."""
import hashlib
import hmac
import json

import pytest
from falcon import testing

from gateway.app import create_app
from gateway.rpc import ServiceUnavailable

SECRET = "app-secret-abcdef"        # the `settings` fixture's META_APP_SECRET
TOKEN = "verify-token-1234567890"   # and META_VERIFY_TOKEN


def sign(raw, secret=SECRET):
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def delivery(*changes, page="9001"):
    return {"object": "page", "entry": [{"id": page, "time": 1710064800,
                                         "changes": list(changes)}]}


def leadgen(leadgen_id, **extra):
    return {"field": "leadgen", "value": dict({"leadgen_id": leadgen_id, "form_id": "555",
                                               "ad_id": "666", "created_time": 1710064800},
                                              **extra)}


def post(anon, raw, signature="sign", **headers):
    if isinstance(raw, dict):
        raw = json.dumps(raw).encode()
    if signature == "sign":
        signature = sign(raw)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    headers.setdefault("Content-Type", "application/json")
    return anon.simulate_post("/api/webhooks/meta", body=raw, headers=headers)


def handshake(anon, **params):
    return anon.simulate_get("/api/webhooks/meta", params=params)


# ---- the subscription handshake ---------------------------------------------

def test_handshake_echoes_the_challenge_as_text(anon):
    r = handshake(anon, **{"hub.mode": "subscribe", "hub.verify_token": TOKEN,
                           "hub.challenge": "1158201444"})
    assert r.status_code == 200
    assert r.text == "1158201444"
    assert r.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("params", [
    {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": TOKEN[:-1], "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": TOKEN, "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.challenge": "1"},
    {"hub.mode": "subscribe", "hub.verify_token": TOKEN},
    {},
])
def test_handshake_with_anything_else_is_forbidden(anon, params):
    r = handshake(anon, **params)
    assert r.status_code == 403
    assert r.json["title"] == "Forbidden"


def test_no_verify_token_configured_refuses_every_handshake(settings, rpc, keys):
    app = create_app(settings.__class__(**{**settings.__dict__, "meta_verify_token": None}),
                     rpc, keys)
    r = handshake(testing.TestClient(app), **{"hub.mode": "subscribe", "hub.verify_token": "",
                                              "hub.challenge": "1"})
    assert r.status_code == 403


# ---- signatures ---------------------------------------------------------------

@pytest.mark.parametrize("signature", [
    None, "", "sha256=", "sha256=" + "0" * 64, "sha1=abc", "garbage",
    sign(b"another body"), sign(json.dumps(delivery(leadgen("444"))).encode(), "other-secret"),
])
def test_missing_or_forged_signatures_are_refused_and_queue_nothing(anon, rpc, signature):
    r = post(anon, delivery(leadgen("444")), signature=signature)
    assert r.status_code == 403
    assert rpc.dispatched == []


def test_the_signature_is_checked_over_the_exact_bytes(anon, rpc):
    raw = json.dumps(delivery(leadgen("444"))).encode()
    # the same JSON, re-spaced: a different body, so the old signature fails
    respaced = json.dumps(json.loads(raw), indent=2).encode()
    assert post(anon, respaced, signature=sign(raw)).status_code == 403
    assert post(anon, respaced, signature=sign(respaced)).status_code == 200
    assert post(anon, raw, signature=sign(raw).upper().replace("SHA256=", "sha256=")).status_code \
        == 200


def test_the_signature_comes_before_any_parsing(anon, rpc):
    assert post(anon, b"{not json", signature=None).status_code == 403
    assert post(anon, b"{not json").status_code == 400
    assert post(anon, b"\xff\xfe").status_code == 400
    assert post(anon, b"[1, 2]").status_code == 400
    assert rpc.dispatched == []


def test_no_app_secret_configured_answers_503_so_meta_retries(settings, rpc, keys):
    app = create_app(settings.__class__(**{**settings.__dict__, "meta_app_secret": None}),
                     rpc, keys)
    r = post(testing.TestClient(app), delivery(leadgen("444")))
    assert r.status_code == 503 and r.headers.get("Retry-After")
    assert rpc.dispatched == []


def test_the_webhook_needs_no_api_key_but_the_api_still_does(anon, rpc):
    assert post(anon, delivery(leadgen("444"))).status_code == 200
    assert anon.simulate_get("/api/leads").status_code == 401


# ---- what is handed over ------------------------------------------------------

def test_leadgen_changes_are_queued_in_one_message(anon, rpc):
    body = delivery(leadgen("444"), leadgen(445, form_id=555))
    r = post(anon, body, **{"X-Request-ID": "req-1"})
    assert r.status_code == 200
    assert r.json == {"received": 2}
    [(source, event_type, payload, consumer, timeout, context)] = rpc.dispatched
    assert (source, event_type, consumer) == ("gateway", "meta_leadgen_received", "leads")
    assert [c["leadgen_id"] for c in payload["changes"]] == ["444", 445]   # as Meta sent them
    assert all(c["page_id"] == "9001" for c in payload["changes"])
    assert payload["request_id"] == "req-1"
    assert context["call_id_stack"] == ["gateway.http.req-1"]
    assert timeout == 1.0


def test_several_entries_are_flattened_and_other_fields_ignored(anon, rpc):
    body = {"object": "page", "entry": [
        {"id": "1", "changes": [leadgen("10"), {"field": "feed", "value": {"item": "post"}}]},
        {"id": "2", "changes": [{"field": "leadgen", "value": {"leadgen_id": "20",
                                                               "page_id": "22"}}]},
        {"id": "3", "changes": [{"field": "mention", "value": {}}]}]}
    r = post(anon, body)
    assert r.status_code == 200 and r.json == {"received": 2}
    changes = rpc.dispatched[0][2]["changes"]
    assert [(c["leadgen_id"], c["page_id"]) for c in changes] == [("10", "1"), ("20", "22")]


@pytest.mark.parametrize("body", [
    {"object": "page", "entry": [{"id": "1", "changes": [{"field": "feed", "value": {}}]}]},
    {"object": "page", "entry": []},
    {"object": "page"},
    {"object": "page", "entry": "nonsense"},
    {"object": "page", "entry": [1, None, {"changes": "x"}, {"changes": [None, 3]}]},
])
def test_deliveries_with_nothing_to_use_are_acknowledged_without_a_message(anon, rpc, body):
    r = post(anon, body)
    assert r.status_code == 200 and r.json == {"received": 0}
    assert rpc.dispatched == []


def test_a_broker_that_cannot_take_the_delivery_is_a_503(anon, rpc):
    rpc.dispatch_error = ServiceUnavailable("leads", "no instance of the service is running")
    r = post(anon, delivery(leadgen("444")))
    assert r.status_code == 503 and r.headers.get("Retry-After")
    assert r.json["title"] == "Service Unavailable"


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000,
                                 b'{"entry": ' * 40 + b"1" + b"}" * 40, b"\xff\xfe", b"{"])
def test_signed_bodies_that_are_not_json_or_too_deep_are_a_400(anon, rpc, raw):
    r = post(anon, raw)
    assert r.status_code == 400 and r.json["title"] == "Bad Request"
    assert rpc.dispatched == []


def test_bodies_over_the_limit_are_refused(anon, rpc):
    raw = json.dumps(delivery(leadgen("444"), leadgen("1" * 10))).encode() + b" " * (1 << 20)
    assert post(anon, raw).status_code == 413
    assert rpc.dispatched == []


def test_the_webhook_is_in_the_openapi_document_as_public(anon):
    doc = anon.simulate_get("/api/openapi.json").json
    ops = doc["paths"]["/api/webhooks/meta"]
    assert set(ops) == {"get", "post"}
    assert ops["get"]["security"] == [] and ops["post"]["security"] == []
    assert "text/plain" in ops["get"]["responses"]["200"]["content"]
    assert "403" in ops["post"]["responses"]


# ---- rotating the app secret ----------------------------------------------------

def test_while_rotating_the_previous_secret_still_signs(settings, rpc, keys):
    """META_APP_SECRET is the new secret, META_APP_SECRET_PREVIOUS the old one
    (deliveries Meta signed before the reset, and its retries of them)."""
    app = create_app(settings.__class__(**{**settings.__dict__, "meta_app_secret": "new-secret",
                                           "meta_app_secret_previous": SECRET}), rpc, keys)
    client = testing.TestClient(app)
    raw = json.dumps(delivery(leadgen("777"))).encode()
    assert post(client, raw, signature=sign(raw, "new-secret")).status_code == 200
    assert post(client, raw, signature=sign(raw, SECRET)).status_code == 200
    assert post(client, raw, signature=sign(raw, "never-a-secret")).status_code == 403
    assert len(rpc.dispatched) == 2


def test_once_the_rotation_ends_the_old_secret_is_refused(settings, rpc, keys):
    app = create_app(settings.__class__(**{**settings.__dict__, "meta_app_secret": "new-secret",
                                           "meta_app_secret_previous": None}), rpc, keys)
    raw = json.dumps(delivery(leadgen("778"))).encode()
    assert post(testing.TestClient(app), raw, signature=sign(raw, SECRET)).status_code == 403
    assert rpc.dispatched == []
