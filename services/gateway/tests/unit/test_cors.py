"""CORS for the origins in CRM_CORS_ORIGINS (contract section 2)."""
ORIGIN = "http://localhost:5173"


def preflight(anon, origin, method="PATCH", path="/api/leads", **headers):
    return anon.simulate_options(path, headers={"Origin": origin,
                                                "Access-Control-Request-Method": method, **headers})


def test_preflight_from_an_allowed_origin_needs_no_key(anon, rpc):
    result = preflight(anon, ORIGIN)
    assert result.status_code in (200, 204)
    assert result.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PATCH" in result.headers["Access-Control-Allow-Methods"]
    assert rpc.calls == []


def test_preflight_allows_the_auth_and_content_type_headers(anon):
    result = preflight(anon, ORIGIN, **{"Access-Control-Request-Headers": "authorization, content-type"})
    allowed = result.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_preflight_for_an_item_route_works(anon):
    result = preflight(anon, ORIGIN, method="DELETE", path="/api/leads/abc")
    assert result.status_code in (200, 204)
    assert "DELETE" in result.headers["Access-Control-Allow-Methods"]


def test_preflight_from_a_disallowed_origin_gets_no_allow_origin(anon):
    result = preflight(anon, "http://evil.example")
    assert "Access-Control-Allow-Origin" not in result.headers


def test_get_from_an_allowed_origin_is_readable_with_its_paging_headers(client, rpc):
    rpc.answer("leads", "list_leads", {"items": [], "total": 0})
    result = client.simulate_get("/api/leads", headers={"Origin": ORIGIN})
    assert result.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = [h.strip().lower() for h in result.headers["Access-Control-Expose-Headers"].split(",")]
    assert "x-total-count" in exposed and "link" in exposed


def test_get_from_a_disallowed_origin_gets_no_allow_origin(client, rpc):
    rpc.answer("leads", "list_leads", {"items": [], "total": 0})
    result = client.simulate_get("/api/leads", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in result.headers


def test_a_401_to_an_allowed_origin_is_readable_by_the_browser(anon):
    result = anon.simulate_get("/api/leads", headers={"Origin": ORIGIN})
    assert result.status_code == 401
    assert result.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_an_error_to_an_allowed_origin_is_readable_by_the_browser(client):
    result = client.simulate_get("/api/no-such-thing", headers={"Origin": ORIGIN})
    assert result.status_code == 404
    assert result.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_wildcard_setting_allows_any_origin(rpc, keys):
    from falcon import testing

    from crm_common.config import Settings
    from gateway.app import create_app

    app = create_app(Settings(cors_origins=("*",), rpc_timeout=1.0), rpc, keys)
    result = preflight(testing.TestClient(app), "https://app.example.org")
    assert result.headers["Access-Control-Allow-Origin"] == "https://app.example.org"
