"""Request bodies of POST/PATCH /api/leads: what is refused, and what reaches
the leads service (contract sections 2 and 3). A refused body never causes a
write."""
import json

import pytest

VALID = {"name": "Alice Johnson", "email": "alice@example.com"}
READ_ONLY = ("id", "createdAt", "updatedAt", "lastInteraction", "lastInteractionAt")


def fields(result):
    return [e["field"] for e in result.json.get("errors", [])]


@pytest.mark.parametrize("body, field", [
    ({"email": "alice@example.com"}, "name"),
    ({"name": "", "email": "alice@example.com"}, "name"),
    ({"name": "Alice", "email": "not-an-email"}, "email"),
    ({"name": "Alice"}, "email"),
    ({**VALID, "status": "won"}, "status"),
    ({**VALID, "score": 101}, "score"),
    ({**VALID, "score": -1}, "score"),
    ({**VALID, "score": "high"}, "score"),
    ({**VALID, "score": True}, "score"),
    ({**VALID, "value": -5}, "value"),
    ({**VALID, "value": "12"}, "value"),
    ({**VALID, "favouriteColour": "blue"}, "favouriteColour"),
], ids=["missing-name", "empty-name", "bad-email", "missing-email", "status-won", "score-101",
        "score-negative", "score-string", "score-bool", "value-negative", "value-string",
        "unknown-field"])
def test_invalid_create_body_is_422_naming_the_field(client, rpc, body, field):
    result = client.simulate_post("/api/leads", json=body)
    assert result.status_code == 422
    assert result.json["title"] == "Unprocessable Entity"
    assert field in fields(result)
    assert all(e["message"] for e in result.json["errors"])
    assert rpc.writes() == []


@pytest.mark.parametrize("timestamp", [0, 1710064800, True, [], {}])
def test_an_activity_timestamp_that_is_not_text_is_422(client, rpc, timestamp):
    # pydantic alone would read a number as seconds since 1970
    result = client.simulate_post("/api/leads/abc/activity",
                                  json={"type": "call", "title": "x", "timestamp": timestamp})
    assert result.status_code == 422
    assert [e["field"] for e in result.json["errors"]] == ["timestamp"]
    assert rpc.writes() == []


def test_unknown_field_message_says_unknown(client, rpc):
    result = client.simulate_post("/api/leads", json={**VALID, "favouriteColour": "blue"})
    assert result.json["errors"] == [{"field": "favouriteColour", "message": "unknown field"}]


@pytest.mark.parametrize("spelling", ["job_title", "jobTitle"])
def test_job_title_reaches_the_service_as_snake_case(client, rpc, make_lead, spelling):
    rpc.answer("leads", "create_lead", make_lead())
    result = client.simulate_post("/api/leads", json={**VALID, spelling: "CTO"})
    assert result.status_code == 201
    (sent,) = rpc.only_call("leads", "create_lead").args
    assert sent["job_title"] == "CTO"
    assert "jobTitle" not in sent


def test_create_sends_only_what_the_client_set_in_snake_case(client, rpc, make_lead):
    rpc.answer("leads", "create_lead", make_lead())
    client.simulate_post("/api/leads", json={**VALID, "ownerId": "u1", "value": 1200})
    (sent,) = rpc.only_call("leads", "create_lead").args
    assert sent == {"name": "Alice Johnson", "email": "alice@example.com", "owner_id": "u1",
                    "value": 1200}


def test_integer_value_is_accepted(client, rpc, make_lead):
    rpc.answer("leads", "create_lead", make_lead())
    assert client.simulate_post("/api/leads", json={**VALID, "value": 1200}).status_code == 201


@pytest.mark.parametrize("field", READ_ONLY + ("created_at", "last_interaction_at"))
def test_read_only_field_in_patch_is_dropped(client, rpc, make_lead, field):
    rpc.answer("leads", "update_lead", make_lead(status="contacted"))
    result = client.simulate_patch("/api/leads/x", json={"status": "contacted",
                                                         field: "2024-03-10T10:00:00Z"})
    assert result.status_code == 200
    lead_id, changes = rpc.only_call("leads", "update_lead").args
    assert changes == {"status": "contacted"}


def test_read_only_fields_in_create_are_dropped(client, rpc, make_lead):
    rpc.answer("leads", "create_lead", make_lead())
    body = {**VALID, "id": "x", "createdAt": "2024-01-01T00:00:00Z", "lastInteraction": None}
    assert client.simulate_post("/api/leads", json=body).status_code == 201
    (sent,) = rpc.only_call("leads", "create_lead").args
    assert sent == VALID


def test_a_lead_read_can_be_sent_back_whole_as_a_patch(client, rpc, make_lead):
    read = make_lead()
    rpc.answer("leads", "update_lead", make_lead(status="qualified"))
    result = client.simulate_patch("/api/leads/%s" % read["id"], json={**read, "status": "qualified"})
    assert result.status_code == 200
    lead_id, changes = rpc.only_call("leads", "update_lead").args
    assert lead_id == read["id"]
    assert changes["status"] == "qualified"
    assert changes["job_title"] == "CTO"
    assert not set(changes) & {"id", "created_at", "updated_at", "last_interaction",
                               "last_interaction_at", "createdAt", "updatedAt"}


def test_patch_sends_only_the_fields_sent(client, rpc, make_lead):
    rpc.answer("leads", "update_lead", make_lead(status="contacted"))
    client.simulate_patch("/api/leads/abc", json={"status": "contacted"})
    assert rpc.only_call("leads", "update_lead").args == ("abc", {"status": "contacted"})


@pytest.mark.parametrize("field", ["name", "email", "status", "score", "value"])
def test_patch_with_null_for_a_required_field_is_422(client, rpc, field):
    result = client.simulate_patch("/api/leads/abc", json={field: None})
    assert result.status_code == 422
    assert field in fields(result)
    assert rpc.writes() == []


def test_patch_with_null_for_a_nullable_field_passes(client, rpc, make_lead):
    rpc.answer("leads", "update_lead", make_lead(phone=None))
    assert client.simulate_patch("/api/leads/abc", json={"phone": None}).status_code == 200
    assert rpc.only_call("leads", "update_lead").args == ("abc", {"phone": None})


# -- bodies that are not JSON objects ---------------------------------------

def post_raw(client, body, content_type="application/json", path="/api/leads", method="POST"):
    return client.simulate_request(method, path, body=body, content_type=content_type)


def test_malformed_json_is_400(client, rpc):
    result = post_raw(client, b'{"name": "Alice", ')
    assert result.status_code == 400
    assert result.json["title"] == "Bad Request"
    assert rpc.writes() == []


def test_empty_body_is_400(client, rpc):
    assert post_raw(client, b"").status_code == 400
    assert rpc.writes() == []


def test_non_json_content_type_is_415(client, rpc):
    result = post_raw(client, json.dumps(VALID).encode(), content_type="text/plain")
    assert result.status_code == 415
    assert result.json["title"] == "Unsupported Media Type"
    assert rpc.writes() == []


def test_form_encoded_body_is_415(client, rpc):
    result = post_raw(client, b"name=Alice&email=a%40b.co",
                      content_type="application/x-www-form-urlencoded")
    assert result.status_code == 415
    assert rpc.writes() == []


def test_json_with_charset_parameter_is_accepted(client, rpc, make_lead):
    rpc.answer("leads", "create_lead", make_lead())
    result = post_raw(client, json.dumps(VALID).encode(),
                      content_type="application/json; charset=utf-8")
    assert result.status_code == 201


def test_body_over_one_mebibyte_is_413(client, rpc):
    body = json.dumps({**VALID, "company": "a" * (1024 * 1024)}).encode()
    result = post_raw(client, body)
    assert result.status_code == 413
    assert result.json["title"]
    assert rpc.writes() == []


def test_patch_body_over_one_mebibyte_is_413(client, rpc):
    body = json.dumps({"company": "a" * (1024 * 1024)}).encode()
    result = post_raw(client, body, path="/api/leads/abc", method="PATCH")
    assert result.status_code == 413
    assert rpc.writes() == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite_constant_is_400(client, rpc, constant):
    body = ('{"name": "Alice", "email": "alice@example.com", "value": %s}' % constant).encode()
    assert post_raw(client, body).status_code == 400
    assert rpc.writes() == []


def test_json_array_body_is_422(client, rpc):
    result = client.simulate_post("/api/leads", json=[VALID])
    assert result.status_code == 422
    assert fields(result) == ["body"]
    assert rpc.writes() == []


def test_json_scalar_body_is_422(client, rpc):
    result = post_raw(client, b'"Alice"')
    assert result.status_code == 422
    assert rpc.writes() == []


def test_deeply_nested_json_is_400(client, rpc):
    nested = "[" * 100 + "]" * 100
    body = ('{"name": "Alice", "email": "alice@example.com", "company": %s}' % nested).encode()
    result = post_raw(client, body)
    assert result.status_code == 400
    assert rpc.writes() == []


def test_very_deeply_nested_json_is_400_not_500(client, rpc):
    nested = "[" * 100_000 + "]" * 100_000
    body = ('{"name": "Alice", "email": "alice@example.com", "company": %s}' % nested).encode()
    result = post_raw(client, body)
    assert result.status_code == 400
    assert rpc.writes() == []


def test_invalid_utf8_is_400(client, rpc):
    result = post_raw(client, b'{"name": "Al\xffice", "email": "alice@example.com"}')
    assert result.status_code == 400
    assert rpc.writes() == []


def test_huge_integer_literal_is_400_not_500(client, rpc):
    body = ('{"name": "Alice", "email": "alice@example.com", "score": %s}' % ("9" * 5000)).encode()
    result = post_raw(client, body)
    assert result.status_code in (400, 422)
    assert rpc.writes() == []


def test_refused_patch_makes_no_write(client, rpc):
    assert client.simulate_patch("/api/leads/abc", json={"status": "won"}).status_code == 422
    assert post_raw(client, b"{", path="/api/leads/abc", method="PATCH").status_code == 400
    assert rpc.writes() == []


def test_nul_character_in_a_text_field_is_422(client, rpc, make_lead):
    result = client.simulate_post("/api/leads", json={**VALID, "name": "Ali\u0000ce"})
    assert result.status_code == 422
    assert "name" in fields(result)
    assert rpc.writes() == []
