"""How a service's error reaches the client (contract section 2, status codes
and the error body)."""
import pytest

from gateway.rpc import RemoteError, ServiceUnavailable


def remote(exc_path, details=None, value="boom"):
    return RemoteError({"exc_path": exc_path, "exc_type": exc_path.rsplit(".", 1)[-1],
                        "exc_args": [details] if details is not None else [], "value": value})


def test_lead_not_found_is_404(client, rpc):
    rpc.fail("leads", "get_lead", remote("leads.exceptions.LeadNotFound",
                                         {"description": "No lead with this id."}))
    result = client.simulate_get("/api/leads/abc")
    assert result.status_code == 404
    assert result.json == {"title": "Not Found", "description": "No lead with this id."}


def test_duplicate_email_is_409_naming_the_existing_lead(client, rpc):
    rpc.fail("leads", "create_lead", remote("leads.exceptions.DuplicateEmail", {
        "description": "A lead with this email already exists.", "existingId": "abc"}))
    result = client.simulate_post("/api/leads", json={"name": "A", "email": "a@example.com"})
    assert result.status_code == 409
    assert result.json["title"] == "Conflict"
    assert result.json["existingId"] == "abc"
    assert result.json["description"] == "A lead with this email already exists."


def test_invalid_lead_is_422_with_the_services_errors(client, rpc):
    errors = [{"field": "sort", "message": "unknown sort field"}]
    rpc.fail("leads", "update_lead", remote("leads.exceptions.InvalidLead",
                                            {"description": "sort: unknown sort field",
                                             "errors": errors}))
    result = client.simulate_patch("/api/leads/abc", json={"status": "new"})
    assert result.status_code == 422
    assert result.json["errors"] == errors


def test_validation_failure_without_errors_still_has_an_errors_list(client, rpc):
    rpc.fail("leads", "update_lead", remote("crm_common.errors.ValidationFailed",
                                            {"description": "The data is not valid."}))
    result = client.simulate_patch("/api/leads/abc", json={"status": "new"})
    assert result.status_code == 422
    assert result.json["errors"] == []


@pytest.mark.parametrize("exc_path, status", [
    ("crm_common.errors.NotFound", 404), ("crm_common.errors.Conflict", 409),
    ("crm_common.errors.ValidationFailed", 422),
])
def test_shared_domain_errors_map_to_their_status(client, rpc, exc_path, status):
    rpc.fail("leads", "get_lead", remote(exc_path, {"description": "x"}))
    assert client.simulate_get("/api/leads/abc").status_code == status


def test_remote_unavailable_is_503_with_retry_after(client, rpc):
    rpc.fail("leads", "get_lead", remote("crm_common.errors.Unavailable",
                                         {"description": "The database is unavailable."}))
    result = client.simulate_get("/api/leads/abc")
    assert result.status_code == 503
    assert result.json["title"] == "Service Unavailable"
    assert int(result.headers["Retry-After"]) > 0


def test_private_details_of_a_remote_error_are_not_passed_on(client, rpc):
    rpc.fail("leads", "get_lead", remote("leads.exceptions.LeadNotFound", {
        "description": "No lead with this id.", "sql": "SELECT * FROM leads"}))
    result = client.simulate_get("/api/leads/abc")
    assert "sql" not in result.json
    assert "SELECT" not in result.text


def test_unknown_remote_error_is_500_that_leaks_nothing(client, rpc):
    rpc.fail("leads", "get_lead", remote(
        "sqlalchemy.exc.OperationalError", {"description": "could not connect to db-host-7"},
        value='Traceback (most recent call last): File "/srv/nameko/leads/service.py" ...'))
    result = client.simulate_get("/api/leads/abc")
    assert result.status_code == 500
    assert result.json["title"] == "Internal Server Error"
    for secret in ("Traceback", "sqlalchemy", "OperationalError", "nameko", "db-host-7", "service.py"):
        assert secret not in result.text


def test_unexpected_exception_is_500_that_leaks_nothing(client, rpc):
    rpc.fail("leads", "get_lead", KeyError("internal_column_name"))
    result = client.simulate_get("/api/leads/abc")
    assert result.status_code == 500
    assert result.json["title"] == "Internal Server Error"
    assert "internal_column_name" not in result.text
    assert "Traceback" not in result.text


def test_service_unavailable_is_503_json_with_retry_after(client, rpc):
    rpc.fail("leads", "list_leads", ServiceUnavailable("leads", "no answer within 1.0 s"))
    result = client.simulate_get("/api/leads")
    assert result.status_code == 503
    assert result.headers["Content-Type"].startswith("application/json")
    assert result.json["title"] == "Service Unavailable"
    assert int(result.headers["Retry-After"]) > 0


def test_service_unavailable_on_a_write_is_503(client, rpc):
    rpc.fail("leads", "create_lead", ServiceUnavailable("leads", "the broker is unreachable"))
    result = client.simulate_post("/api/leads", json={"name": "A", "email": "a@example.com"})
    assert result.status_code == 503
    assert "Retry-After" in result.headers


def test_key_store_outage_is_503_not_500(anon, keys, api_key):
    import sqlalchemy as sa

    def broken(key):
        raise sa.exc.OperationalError("SELECT", {}, Exception("db-host-7 refused"))
    keys.verify = broken
    result = anon.simulate_get("/api/leads", headers={"X-API-Key": api_key})
    assert result.status_code == 503
    assert "Retry-After" in result.headers
    assert "db-host-7" not in result.text
