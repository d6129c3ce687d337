"""API-key authentication (contract section 2, "Auth")."""
import pytest


@pytest.fixture
def leads_listed(rpc):
    rpc.answer("leads", "list_leads", {"items": [], "total": 0})


def test_request_without_key_is_401_json_with_title(anon, rpc):
    result = anon.simulate_get("/api/leads")
    assert result.status_code == 401
    assert result.json["title"] == "Unauthorized"
    assert result.json["description"]
    assert rpc.calls == []


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer crm_wrong"},
    {"X-API-Key": "crm_wrong"},
    {"Authorization": "Bearer "},
    {"X-API-Key": ""},
], ids=["wrong-bearer", "wrong-x-api-key", "empty-bearer", "empty-x-api-key"])
def test_wrong_key_is_401(anon, rpc, headers):
    result = anon.simulate_get("/api/leads", headers=headers)
    assert result.status_code == 401
    assert result.json["title"] == "Unauthorized"
    assert rpc.calls == []


def test_basic_auth_is_not_accepted(anon, rpc, api_key):
    import base64
    token = base64.b64encode(("user:%s" % api_key).encode()).decode()
    result = anon.simulate_get("/api/leads", headers={"Authorization": "Basic " + token})
    assert result.status_code == 401
    assert result.json["title"] == "Unauthorized"
    assert rpc.calls == []


def test_401_names_the_bearer_scheme(anon):
    result = anon.simulate_get("/api/leads")
    assert result.headers["WWW-Authenticate"].startswith("Bearer")


def test_right_key_as_bearer_passes(anon, api_key, leads_listed):
    result = anon.simulate_get("/api/leads", headers={"Authorization": "Bearer " + api_key})
    assert result.status_code == 200


def test_bearer_scheme_is_case_insensitive(anon, api_key, leads_listed):
    result = anon.simulate_get("/api/leads", headers={"Authorization": "bearer " + api_key})
    assert result.status_code == 200


def test_right_key_as_x_api_key_passes(anon, api_key, leads_listed):
    result = anon.simulate_get("/api/leads", headers={"X-API-Key": api_key})
    assert result.status_code == 200


def test_health_needs_no_key(anon, rpc):
    for service in ("leads", "contacts", "tasks", "campaigns", "analytics"):
        rpc.answer(service, "ping", {"status": "ok"})
    assert anon.simulate_get("/api/health").status_code == 200


def test_openapi_document_needs_no_key(anon):
    assert anon.simulate_get("/api/openapi.json").status_code == 200


def test_settings_need_a_key(anon, keys):
    assert anon.simulate_get("/api/settings/config").status_code == 401
    before = keys.active
    assert anon.simulate_post("/api/settings/regenerate-key").status_code == 401
    assert keys.active == before


def test_unknown_route_with_key_is_json_404_titled_not_found(client):
    result = client.simulate_get("/api/no-such-thing")
    assert result.status_code == 404
    assert result.headers["Content-Type"].startswith("application/json")
    assert result.json["title"] == "Not Found"


def test_unknown_route_for_a_write_method_is_json_404(client, rpc):
    result = client.simulate_post("/api/no-such-thing", json={"a": 1})
    assert result.status_code == 404
    assert result.json["title"] == "Not Found"
    assert rpc.calls == []


def test_errors_are_json_whatever_the_client_accepts(anon):
    result = anon.simulate_get("/api/leads", headers={"Accept": "text/html"})
    assert result.status_code == 401
    assert result.headers["Content-Type"].startswith("application/json")
    assert result.json["title"] == "Unauthorized"
