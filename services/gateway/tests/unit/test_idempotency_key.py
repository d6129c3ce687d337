"""Idempotency-Key: every write request reaches its service with an
idempotency key (the client's, or one of its own), a malformed key is a 400,
and the OpenAPI document says which operations take one."""
import re

import pytest

from gateway.rpc import RemoteError

ID = "0b6f3f5e-8a59-4c1b-9d0e-2f7d1f7c9a11"
RECORD = {"id": ID, "name": "A", "email": "a@example.com"}
ACTIVITY = {"type": "call", "title": "Intro"}

# method, path, body, service, RPC method, the service's answer
WRITES = [
    ("POST", "/api/leads", {"name": "A", "email": "a@example.com"}, "leads", "create_lead", RECORD),
    ("PATCH", "/api/leads/" + ID, {"status": "contacted"}, "leads", "update_lead", RECORD),
    ("DELETE", "/api/leads/" + ID, None, "leads", "delete_lead", RECORD),
    ("POST", "/api/leads/%s/activity" % ID, ACTIVITY, "leads", "log_activity", RECORD),
    ("POST", "/api/leads/%s/convert" % ID, None, "leads", "convert_lead",
     {"contact": RECORD, "created": True}),
    ("POST", "/api/contacts", {"name": "A", "email": "a@example.com"}, "contacts",
     "create_contact", RECORD),
    ("PATCH", "/api/contacts/" + ID, {"name": "B"}, "contacts", "update_contact", RECORD),
    ("DELETE", "/api/contacts/" + ID, None, "contacts", "delete_contact", RECORD),
    ("POST", "/api/contacts/%s/history" % ID, ACTIVITY, "contacts", "log_history", RECORD),
    ("POST", "/api/tasks", {"title": "Call"}, "tasks", "create_task", RECORD),
    ("PATCH", "/api/tasks/" + ID, {"title": "Call again"}, "tasks", "update_task", RECORD),
    ("DELETE", "/api/tasks/" + ID, None, "tasks", "delete_task", RECORD),
]
WRITE_IDS = ["%s %s" % (w[0], w[4]) for w in WRITES]
# Writes that take no key: no service applies one (see their @operation).
UNKEYED_WRITES = {("post", "/api/webhooks/meta"), ("post", "/api/settings/regenerate-key"),
                  ("post", "/api/campaigns/sync")}


def send(client, write, key=None):
    method, path, body, *_ = write
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.simulate_request(method, path, json=body, headers=headers)


def key_sent(rpc, write):
    return rpc.only_call(write[3], write[4]).context.get("idempotency_key")


@pytest.fixture(params=WRITES, ids=WRITE_IDS)
def write(request, rpc):
    rpc.answer(request.param[3], request.param[4], request.param[5])
    return request.param


def test_the_clients_key_reaches_the_service(client, rpc, write):
    result = send(client, write, key="order-42:retry/1")
    assert result.status_code < 300, result.text
    assert key_sent(rpc, write) == "order-42:retry/1"


def test_without_a_key_each_request_gets_a_fresh_one(client, rpc, write):
    send(client, write)
    send(client, write)
    first, second = [c.context.get("idempotency_key") for c in rpc.called(write[3], write[4])]
    assert first and second and first != second
    assert re.fullmatch(r"[!-~]{1,255}", first)


def test_the_key_travels_next_to_the_call_id_stack(client, rpc):
    rpc.answer("leads", "create_lead", RECORD)
    client.simulate_post("/api/leads", json={"name": "A", "email": "a@example.com"},
                         headers={"Idempotency-Key": "k-1", "X-Request-ID": "req-7"})
    context = rpc.only_call("leads", "create_lead").context
    assert context["idempotency_key"] == "k-1"
    assert "req-7" in context["call_id_stack"][-1]


@pytest.mark.parametrize("key", ["", "x" * 256, "two words", "caf\u00e9", "tab\there"],
                         ids=["empty", "256-characters", "space", "non-ascii", "control"])
def test_a_malformed_key_is_400_naming_the_header_and_nothing_is_called(client, rpc, key):
    result = client.simulate_post("/api/leads", json={"name": "A", "email": "a@example.com"},
                                  headers={"Idempotency-Key": key})
    assert result.status_code == 400
    assert result.json["errors"][0]["field"] == "Idempotency-Key"
    assert "Idempotency-Key" in result.json["description"]
    assert rpc.calls == []


def test_a_255_character_key_is_accepted(client, rpc):
    rpc.answer("leads", "create_lead", RECORD)
    key = "k" * 255
    result = client.simulate_post("/api/leads", json={"name": "A", "email": "a@example.com"},
                                  headers={"Idempotency-Key": key})
    assert result.status_code == 201
    assert rpc.only_call("leads", "create_lead").context["idempotency_key"] == key


def test_authentication_comes_before_the_key_check(anon, rpc):
    result = anon.simulate_post("/api/leads", json={"name": "A", "email": "a@example.com"},
                                headers={"Idempotency-Key": ""})
    assert result.status_code == 401


def test_reads_carry_no_key(client, rpc):
    rpc.answer("leads", "get_lead", RECORD)
    client.simulate_get("/api/leads/" + ID, headers={"Idempotency-Key": "k-1"})
    assert "idempotency_key" not in rpc.only_call("leads", "get_lead").context


def test_a_sync_takes_no_key_and_ignores_one(client, rpc):
    rpc.answer("campaigns", "sync_now", {"status": "ok"})
    result = client.simulate_post("/api/campaigns/sync", headers={"Idempotency-Key": ""})
    assert result.status_code == 200
    assert "idempotency_key" not in rpc.only_call("campaigns", "sync_now").context


def test_a_key_reused_with_another_request_is_422_naming_the_header(client, rpc):
    rpc.fail("leads", "create_lead", RemoteError({
        "exc_path": "crm_common.errors.ValidationFailed", "exc_type": "ValidationFailed",
        "value": "Idempotency-Key: reused with a different request",
        "exc_args": [{"description": "Idempotency-Key: reused with a different request",
                      "errors": [{"field": "Idempotency-Key",
                                  "message": "reused with a different request"}]}]}))
    result = client.simulate_post("/api/leads", json={"name": "A", "email": "a@example.com"},
                                  headers={"Idempotency-Key": "k-1"})
    assert result.status_code == 422
    assert result.json["errors"] == [{"field": "Idempotency-Key",
                                      "message": "reused with a different request"}]


def test_browsers_may_send_the_header(anon):
    result = anon.simulate_options("/api/leads", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"})
    assert "idempotency-key" in result.headers["Access-Control-Allow-Headers"].lower()


# ---- the OpenAPI document -------------------------------------------------------------------

@pytest.fixture
def doc(anon):
    return anon.simulate_get("/api/openapi.json").json


def header_parameter(op):
    found = [p for p in op.get("parameters", []) if p["name"] == "Idempotency-Key"]
    return found[0] if found else None


def test_every_keyed_write_documents_the_header_with_its_400_and_422(doc):
    keyed = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "get" or (method, path) in UNKEYED_WRITES:
                assert header_parameter(op) is None, (method, path)
                continue
            keyed += 1
            param = header_parameter(op)
            assert param is not None, (method, path)
            assert param["in"] == "header" and param["required"] is False
            assert param["schema"]["maxLength"] == 255 and param["schema"]["minLength"] == 1
            assert {"400", "422"} <= set(op["responses"]), (method, path)
    assert keyed == len(WRITES)


def test_the_documented_pattern_is_the_rule_the_gateway_applies(doc):
    pattern = header_parameter(doc["paths"]["/api/leads"]["post"])["schema"]["pattern"]
    assert re.search(pattern, "order-42:retry/1")
    for refused in ("two words", "caf\u00e9", "tab\there", ""):
        assert not re.search(pattern, refused)
