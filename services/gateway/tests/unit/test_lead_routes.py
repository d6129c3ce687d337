"""The Lead routes' success answers (contract section 3)."""


def test_create_is_201_with_location_and_the_lead(client, rpc, make_lead):
    created = make_lead(id="4a1c2d3e-0000-4000-8000-000000000001")
    rpc.answer("leads", "create_lead", created)
    result = client.simulate_post("/api/leads", json={"name": "Alice", "email": "alice@example.com"})
    assert result.status_code == 201
    assert result.headers["Location"].endswith("/api/leads/%s" % created["id"])
    assert result.json == created


def test_read_returns_what_the_service_returned(client, rpc, make_lead):
    rpc.answer("leads", "get_lead", make_lead())
    result = client.simulate_get("/api/leads/abc")
    assert result.status_code == 200
    assert result.json == make_lead()
    assert rpc.only_call("leads", "get_lead").args == ("abc",)


def test_trailing_slash_reaches_the_same_route(client, rpc, make_lead):
    rpc.answer("leads", "get_lead", make_lead())
    assert client.simulate_get("/api/leads/abc/").status_code == 200


def test_patch_is_200_with_the_updated_lead(client, rpc, make_lead):
    rpc.answer("leads", "update_lead", make_lead(status="contacted"))
    result = client.simulate_patch("/api/leads/abc", json={"status": "contacted"})
    assert result.status_code == 200
    assert result.json["status"] == "contacted"


def test_delete_is_204_with_an_empty_body(client, rpc):
    rpc.answer("leads", "delete_lead", None)
    result = client.simulate_delete("/api/leads/abc")
    assert result.status_code == 204
    assert result.content == b""
    assert rpc.only_call("leads", "delete_lead").args == ("abc",)


def test_log_activity_is_201_with_the_activity(client, rpc):
    activity = {"id": "a1", "type": "call", "title": "Called", "description": None,
                "timestamp": "2024-03-10T10:00:00Z"}
    rpc.answer("leads", "log_activity", activity)
    result = client.simulate_post("/api/leads/abc/activity", json={"type": "call", "title": "Called"})
    assert result.status_code == 201
    assert result.json == activity
    assert "Location" in result.headers
    assert rpc.only_call("leads", "log_activity").args == ("abc", {"type": "call", "title": "Called"})


def test_logging_a_status_change_is_422(client, rpc):
    result = client.simulate_post("/api/leads/abc/activity",
                                  json={"type": "status_change", "title": "x"})
    assert result.status_code == 422
    assert [e["field"] for e in result.json["errors"]] == ["type"]
    assert rpc.writes() == []


def test_unsupported_method_is_json_405(client, rpc):
    result = client.simulate_put("/api/leads/abc", json={"name": "x"})
    assert result.status_code == 405
    assert result.json["title"] == "Method Not Allowed"
    assert rpc.calls == []
