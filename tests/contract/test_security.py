"""The security walk, over the OpenAPI document the stack serves: every
operation but the public ones needs the API key (a header; `?key=` only on
the event stream); keys are stored hashed; secrets are never logged nor
returned whole; bodies and pages have limits."""
import hashlib
import json
import secrets
import time
import uuid

import pytest
import requests
import sqlalchemy as sa

from crm_common.contract import sign
from crm_common.testing import wait_for

PUBLIC = {"GET /api/health", "GET /api/openapi.json", "GET /api/webhooks/meta",
          "POST /api/webhooks/meta"}
EVENT_STREAM = "GET /api/events/stream"
MiB = 1024 * 1024


def test_the_stack_serves_the_document_the_tests_walk(api, document):
    served = requests.get(api.url + "/api/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == document


def test_the_public_operations_are_the_documented_ones(document):
    public = {"%s %s" % (method.upper(), path) for path, item in document["paths"].items()
              for method, op in item.items() if op.get("security") == []}
    assert public == PUBLIC


def unauthorized_problems(r):
    problems = []
    if r.status_code != 401:
        return ["answered %d: %.200s" % (r.status_code, r.text)]
    if not r.headers.get("Content-Type", "").startswith("application/json"):
        problems.append("Content-Type %r" % r.headers.get("Content-Type"))
    elif not (r.json().get("title") == "Unauthorized" and r.json().get("description")):
        problems.append("not the error shape: %s" % r.text)
    if not r.headers.get("WWW-Authenticate"):
        problems.append("no WWW-Authenticate")
    return problems


def call(api, operation, records, **kw):
    body = b"{}" if operation.body_schema is not None else None
    headers = kw.pop("headers", {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    return api.request(operation.method.upper(), operation.concrete_path(records), data=body,
                       headers=headers, timeout=10, **kw)


@pytest.mark.operations.with_args(lambda op: str(op) not in PUBLIC)
def test_every_private_operation_refuses_a_missing_or_wrong_key(operation, api, records):
    wrong = "crm_" + secrets.token_hex(32)
    failures = []
    for label, kw in [("no key", {"auth": False}),
                      ("a wrong Bearer key", {"key": wrong}),
                      ("a wrong X-API-Key", {"auth": False, "headers": {"X-API-Key": wrong}}),
                      ("an empty Bearer", {"auth": False, "headers": {"Authorization": "Bearer "}}),
                      ("the key in another scheme",
                       {"auth": False, "headers": {"Authorization": "Basic " + api.key}})]:
        failures += ["%s: %s" % (label, p) for p in
                     unauthorized_problems(call(api, operation, records, **kw))]
    assert not failures, "\n".join(failures)


@pytest.mark.operations.with_args(lambda op: str(op) not in PUBLIC | {EVENT_STREAM})
def test_the_key_in_the_query_string_is_refused_outside_the_event_stream(operation, api,
                                                                          records):
    r = call(api, operation, records, auth=False, params={"key": api.key})
    assert not unauthorized_problems(r), unauthorized_problems(r)


def test_the_event_stream_takes_the_key_in_the_query_string(api):
    with requests.get(api.url + "/api/events/stream", params={"key": api.key}, stream=True,
                      timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
    with requests.get(api.url + "/api/events/stream", params={"key": "crm_wrong"}, stream=True,
                      timeout=10) as r:
        assert not unauthorized_problems(r)


@pytest.mark.operations.with_args(lambda op: str(op) in PUBLIC)
def test_the_public_operations_need_no_key(operation, api, records):
    r = call(api, operation, records, auth=False)
    expected = {"/api/webhooks/meta": 403}.get(operation.path, 200)   # no token, no signature
    assert r.status_code == expected, r.text


# ---- keys at rest ---------------------------------------------------------------------

def every_value(engine):
    """Every value of every table of a database, as text."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                yield from (str(value) for value in row)


def test_keys_are_stored_hashed(api, gateway_db, used_keys):
    values = list(every_value(gateway_db))
    assert values
    for key in used_keys:
        assert not [v for v in values if key in v], "a key is stored in plain text"
        assert hashlib.sha256(key.encode()).hexdigest() in values


# ---- secrets in answers and logs ---------------------------------------------------------

def test_settings_mask_every_secret(api, stack):
    r = api.get("/api/settings/config")
    assert r.status_code == 200
    config = r.json()
    for name in ("META_APP_SECRET", "META_VERIFY_TOKEN", "META_ACCESS_TOKEN"):
        assert stack.env[name] not in r.text, name
    assert api.key not in r.text
    assert config["apiKey"].endswith(api.key[-4:]) and "\u2022" in config["apiKey"]
    assert "\u2022" in config["metaVerifyToken"]
    assert config["metaAppSecretSet"] is True


def test_secrets_are_never_logged(api, stack, graph, used_keys, reset_key):
    """A run that uses every secret (each API key, the verify token, the app
    secret, the Graph token, through the webhook, a sync, a lead-ad fetch and
    a key rotation), then the stack's log holds none of them."""
    env = stack.env
    r = api.get("/api/webhooks/meta", auth=False, params={
        "hub.mode": "subscribe", "hub.verify_token": env["META_VERIFY_TOKEN"],
        "hub.challenge": "4242"})
    assert r.status_code == 200 and r.text == "4242"
    leadgen_id = str(uuid.uuid4().int)[:15]
    email = "walk.%s@example.com" % leadgen_id
    graph.leads[leadgen_id] = {"id": leadgen_id, "created_time": "2024-03-10T10:00:00+0000",
                               "field_data": [{"name": "full_name", "values": ["Secret Walk"]},
                                              {"name": "email", "values": [email]}]}
    raw = json.dumps({"object": "page", "entry": [{"id": "1", "time": 1710064800, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": leadgen_id, "page_id": "1"}},
        {"field": "leadgen", "value": {"leadgen_id": "999" + leadgen_id, "page_id": "1"}}]}]})
    r = api.post("/api/webhooks/meta", auth=False, data=raw.encode(), headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(env["META_APP_SECRET"], raw.encode())})
    assert r.status_code == 200 and r.json() == {"received": 2}
    wait_for(lambda: api.get("/api/leads", params={"search": "walk.%s" % leadgen_id}).json(),
             timeout=30, what="the lead fetched from the Graph API")
    # the unknown submission was fetched (Graph's 404 is final: one attempt)
    # before `fail_next` is set: that fetch would take the failure meant for
    # the sync
    missing = "/v21.0/999" + leadgen_id
    wait_for(lambda: any(path == missing for path, _ in list(graph.requests)),
             timeout=30, what="the unknown submission's fetch")
    assert api.post("/api/campaigns/sync").status_code == 200
    graph.fail_next.append((400, {"error": {"message": "Invalid OAuth access token.",
                                            "type": "OAuthException", "code": 190}}))
    assert api.post("/api/campaigns/sync").status_code == 502
    with requests.get(api.url + "/api/events/stream", params={"key": api.key}, stream=True,
                      timeout=10) as r:
        assert r.status_code == 200
    rotated = api.post("/api/settings/regenerate-key")
    assert rotated.status_code == 200
    used_keys.append(rotated.json()["apiKey"])
    api.key = rotated.json()["apiKey"]
    assert api.get("/api/leads", params={"search": "walk.%s" % leadgen_id}).json()
    reset_key()
    time.sleep(0.5)             # the processes' last lines reach the log

    with open(stack.log_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    assert "/api/webhooks/meta" in log and "leadgen" in log    # the run was logged
    leaked = {name for name in ("META_APP_SECRET", "META_VERIFY_TOKEN", "META_ACCESS_TOKEN")
              if env[name] in log}
    leaked |= {"API key ending %s" % key[-4:] for key in used_keys if key in log}
    assert not leaked


# ---- limits ------------------------------------------------------------------------------

@pytest.mark.operations.with_args(lambda op: op.query_parameter("limit") is not None)
def test_page_size_is_limited(operation, api, records):
    path = operation.concrete_path(records)
    assert operation.query_parameter("limit")["schema"]["maximum"] == 1000
    for limit in ("0", "1001", "100000", "-1", "ten"):
        r = api.get(path, params={"limit": limit})
        assert r.status_code == 400, (limit, r.text)
        assert r.json()["errors"][0]["field"] == "limit"
    r = api.get(path, params={"limit": "1000"})
    assert r.status_code == 200 and len(r.json()) <= 1000


@pytest.mark.operations.with_args(lambda op: op.body_schema is not None)
def test_bodies_over_1_mib_are_refused_before_anything_else(operation, api, records):
    raw = b'{"name": "' + b"x" * (MiB + 1) + b'"}'
    r = api.request(operation.method.upper(), operation.concrete_path(records), data=raw,
                    headers={"Content-Type": "application/json"},
                    auth=operation.path != "/api/webhooks/meta")
    assert r.status_code == 413 and r.json()["title"] and r.json()["description"], r.text
    assert api.get("/api/health", auth=False).status_code == 200   # the server carries on


def test_the_longest_valid_query_fits_and_a_longer_request_line_is_a_json_414(api):
    emoji = "\U0001F600"            # 4 bytes of UTF-8: 12 characters percent-encoded
    r = api.get("/api/leads", params={"search": emoji * 200, "source": emoji * 100,
                                      "ownerId": emoji * 100, "status": ",".join(["new"] * 25),
                                      "limit": 1000, "offset": 2 ** 63 - 1, "minScore": 100})
    assert r.status_code == 200 and r.json() == []
    r = api.get("/api/leads", params={"search": "x" * 9000})
    assert r.status_code == 414
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["title"] == "URI Too Long" and r.json()["description"]
