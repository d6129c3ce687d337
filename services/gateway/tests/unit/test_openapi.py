"""GET /api/openapi.json describes the running API (contract section 2)."""
import pytest

READ_ONLY = {"id", "createdAt", "updatedAt", "lastInteraction", "lastInteractionAt"}
ROUTES = ("/api/leads", "/api/leads/{id}", "/api/leads/{id}/activity", "/api/settings/config",
          "/api/settings/regenerate-key", "/api/health")
PREFIX = "#/components/schemas/"


@pytest.fixture
def doc(anon):
    result = anon.simulate_get("/api/openapi.json")
    assert result.status_code == 200
    return result.json


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc, schema):
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref[len(PREFIX):]] if ref else schema


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_document_is_openapi_3(doc):
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]


@pytest.mark.parametrize("path", ROUTES)
def test_document_lists_the_route(doc, path):
    assert path in doc["paths"]


def test_documented_methods_match_the_lead_routes(doc):
    assert set(doc["paths"]["/api/leads"]) == {"get", "post"}
    assert set(doc["paths"]["/api/leads/{id}"]) == {"get", "patch", "delete"}
    assert set(doc["paths"]["/api/leads/{id}/activity"]) == {"get", "post"}


def test_every_ref_resolves_to_a_component_schema(doc):
    found = list(refs(doc))
    assert found
    schemas = doc["components"]["schemas"]
    for ref in found:
        assert ref.startswith(PREFIX), ref
        assert ref[len(PREFIX):] in schemas, ref


def test_operation_ids_are_unique(doc):
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


def test_lead_create_requires_name_and_email_and_has_no_read_only_fields(doc):
    body = doc["paths"]["/api/leads"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = resolve(doc, body)
    assert {"name", "email"} <= set(schema["required"])
    assert not READ_ONLY & set(schema["properties"])
    assert "jobTitle" in schema["properties"]


def test_lead_update_requires_nothing_and_has_no_read_only_fields(doc):
    body = doc["paths"]["/api/leads/{id}"]["patch"]["requestBody"]["content"]["application/json"]
    schema = resolve(doc, body["schema"])
    assert not schema.get("required")
    assert not READ_ONLY & set(schema["properties"])


def test_lead_representation_marks_read_only_fields(doc):
    lead = doc["components"]["schemas"]["Lead"]
    for name in READ_ONLY:
        assert lead["properties"][name].get("readOnly") is True, name


def test_list_query_limit_is_documented_with_maximum_1000(doc):
    params = {p["name"]: p for p in doc["paths"]["/api/leads"]["get"]["parameters"]}
    assert params["limit"]["in"] == "query"
    assert params["limit"]["schema"]["maximum"] == 1000
    assert params["limit"]["schema"]["minimum"] == 1
    assert {"offset", "status", "search", "source", "ownerId", "minScore", "sort"} <= set(params)


def test_list_response_is_an_array_with_paging_headers(doc):
    ok = doc["paths"]["/api/leads"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["type"] == "array"
    assert {"X-Total-Count", "Link"} <= set(ok["headers"])


def test_create_documents_201_with_location(doc):
    created = doc["paths"]["/api/leads"]["post"]["responses"]["201"]
    assert "Location" in created["headers"]


def test_delete_documents_204(doc):
    assert "204" in doc["paths"]["/api/leads/{id}"]["delete"]["responses"]


@pytest.mark.parametrize("path", ["/api/health", "/api/openapi.json"])
def test_public_operations_need_no_security(doc, path):
    assert doc["paths"][path]["get"]["security"] == []


def test_protected_operations_use_the_global_security_and_document_401(doc):
    assert doc["security"]
    for path, method, op in operations(doc):
        if path in ("/api/health", "/api/openapi.json", "/api/webhooks/meta"):
            continue
        assert "security" not in op, (path, method)
        assert "401" in op["responses"], (path, method)


def test_security_schemes_are_bearer_and_x_api_key(doc):
    schemes = doc["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"} in schemes.values()
    assert any(s.get("in") == "header" and s.get("name") == "X-API-Key" for s in schemes.values())


def test_only_paged_lists_document_paging_headers(doc):
    leads = doc["paths"]["/api/leads"]["get"]["responses"]["200"]
    assert leads["headers"]["X-Total-Count"]["required"] is True
    chart = doc["paths"]["/api/dashboard/charts/revenue"]["get"]["responses"]["200"]
    assert "headers" not in chart       # a chart is a bare array, not a page


def test_a_second_success_or_a_503_with_its_own_body_is_documented_with_its_schema(doc):
    convert = doc["paths"]["/api/leads/{id}/convert"]["post"]["responses"]
    assert {"200", "201"} <= set(convert)
    assert convert["200"]["content"] == convert["201"]["content"]
    health = doc["paths"]["/api/health"]["get"]["responses"]
    assert health["503"]["content"] == health["200"]["content"]


def test_ids_are_uuids_and_a_request_line_over_the_limit_is_documented(doc):
    for path, method, op in operations(doc):
        params = op.get("parameters", [])
        for param in params:
            if param["in"] == "path":
                assert param["schema"] == {"type": "string", "format": "uuid"}, (path, param)
        if [p for p in params if p["in"] in ("path", "query")]:
            assert "414" in op["responses"], (path, method)


def test_operation_ids_are_plain_words(doc):
    for _, _, op in operations(doc):
        assert op["operationId"].isalnum(), op["operationId"]
