"""The Contact routes (contract section 3): what is refused at the edge, what
reaches the contacts service, and how its answers and errors come back. A
refused request never reaches the service."""
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.rpc import RemoteError

CONTACT_ID = "5d0c8b1e-3a8f-4a59-9b7e-0c1d2e3f4a5b"
VALID = {"name": "Bob Buyer", "email": "bob@example.com"}
READ_ONLY = ("id", "leadId", "lastContacted", "createdAt", "updatedAt")


def contact(**overrides):
    """A contact as the contacts service returns it (camelCase, read-only fields too)."""
    base = {"id": CONTACT_ID, "name": "Bob Buyer", "email": "bob@example.com", "role": "Buyer",
            "company": "Acme", "phone": None, "notes": "Met at expo",
            "leadId": "0b6f3f5e-8a59-4c1b-9d0e-2f7d1f7c9a11",
            "lastContacted": "2024-03-10T10:00:00.000Z", "createdAt": "2024-03-01T09:00:00.000Z",
            "updatedAt": "2024-03-10T10:00:00.000Z"}
    base.update(overrides)
    return base


def history_item(n=0):
    return {"id": "h%d" % n, "type": "meeting", "title": "Review", "description": None,
            "timestamp": "2024-03-10T10:00:00.000Z"}


def fields(result):
    return [e["field"] for e in result.json.get("errors", [])]


def remote(exc_path, details):
    return RemoteError({"exc_path": exc_path, "exc_type": exc_path.rsplit(".", 1)[-1],
                        "exc_args": [details], "value": details["description"]})


def sent(rpc, method):
    return rpc.only_call("contacts", method).args


# -- create, read, update, delete -------------------------------------------

def test_create_is_201_with_location_and_the_contact(client, rpc):
    rpc.answer("contacts", "create_contact", contact())
    result = client.simulate_post("/api/contacts", json={**VALID, "role": "Buyer", "notes": "hi"})
    assert result.status_code == 201
    assert result.headers["Location"].endswith("/api/contacts/%s" % CONTACT_ID)
    assert result.json == contact()
    assert sent(rpc, "create_contact") == ({**VALID, "role": "Buyer", "notes": "hi"},)


def test_read_update_and_delete_reach_the_service_with_the_id(client, rpc):
    rpc.answer("contacts", "get_contact", contact())
    rpc.answer("contacts", "update_contact", contact(role="Champion"))
    rpc.answer("contacts", "delete_contact", contact())
    assert client.simulate_get("/api/contacts/abc").json == contact()
    result = client.simulate_patch("/api/contacts/abc", json={"role": "Champion"})
    assert result.status_code == 200 and result.json["role"] == "Champion"
    assert sent(rpc, "update_contact") == ("abc", {"role": "Champion"})
    result = client.simulate_delete("/api/contacts/abc")
    assert result.status_code == 204 and result.content == b""
    assert sent(rpc, "delete_contact") == ("abc",)


@pytest.mark.parametrize("body, expected", [
    ({"name": "", "email": "nope"}, {"name", "email"}),
    ({"email": "bob@example.com"}, {"name"}),
    ({"name": "Bob"}, {"email"}),
    ({**VALID, "name": "B" * 201}, {"name"}),
    ({**VALID, "email": 42}, {"email"}),
    ({**VALID, "phone": 5550100}, {"phone"}),
    ({**VALID, "notes": "n" * 20_001}, {"notes"}),
    ({**VALID, "favouriteColour": "blue"}, {"favouriteColour"}),
], ids=["empty-name-bad-email", "missing-name", "missing-email", "name-too-long",
        "email-not-text", "phone-not-text", "notes-too-long", "unknown-field"])
def test_invalid_create_body_is_422_naming_the_fields(client, rpc, body, expected):
    result = client.simulate_post("/api/contacts", json=body)
    assert result.status_code == 422
    assert result.json["title"] == "Unprocessable Entity"
    assert expected <= set(fields(result))
    assert rpc.calls == []


@pytest.mark.parametrize("field", ["name", "email"])
def test_patch_with_null_for_a_required_field_is_422(client, rpc, field):
    result = client.simulate_patch("/api/contacts/abc", json={field: None})
    assert result.status_code == 422
    assert fields(result) == [field]
    assert rpc.calls == []


def test_patch_with_null_for_a_nullable_field_passes(client, rpc):
    rpc.answer("contacts", "update_contact", contact(notes=None))
    assert client.simulate_patch("/api/contacts/abc", json={"notes": None}).status_code == 200
    assert sent(rpc, "update_contact") == ("abc", {"notes": None})


def test_read_only_fields_in_create_are_dropped(client, rpc):
    rpc.answer("contacts", "create_contact", contact())
    body = {**VALID, "id": "x", "leadId": "y", "lastContacted": "2024-01-01T00:00:00Z",
            "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "z"}
    assert client.simulate_post("/api/contacts", json=body).status_code == 201
    assert sent(rpc, "create_contact") == (VALID,)


@pytest.mark.parametrize("field", READ_ONLY + ("lead_id", "last_contacted"))
def test_read_only_field_in_patch_is_dropped(client, rpc, field):
    rpc.answer("contacts", "update_contact", contact(role="Champion"))
    result = client.simulate_patch("/api/contacts/abc", json={"role": "Champion", field: "x"})
    assert result.status_code == 200
    assert sent(rpc, "update_contact") == ("abc", {"role": "Champion"})


def test_a_contact_read_can_be_sent_back_whole_as_a_patch(client, rpc):
    read = contact()
    rpc.answer("contacts", "update_contact", contact(role="Champion"))
    result = client.simulate_patch("/api/contacts/%s" % read["id"], json={**read, "role": "Champion"})
    assert result.status_code == 200
    contact_id, changes = sent(rpc, "update_contact")
    assert contact_id == read["id"]
    assert changes == {"name": "Bob Buyer", "email": "bob@example.com", "role": "Champion",
                       "company": "Acme", "phone": None, "notes": "Met at expo"}


# -- the list ------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=x", "offset=-1", "offset=x", "sort=password", "sort=notes",
    "sort=-leadId", "search=" + "s" * 201, "search=a%00b",
])
def test_bad_list_query_is_400(client, rpc, query):
    result = client.simulate_get("/api/contacts", query_string=query)
    assert result.status_code == 400
    assert result.json["title"] == "Bad Request"
    assert rpc.calls == []


def test_default_paging_and_sort_reach_the_service(client, rpc):
    rpc.answer("contacts", "list_contacts", {"items": [], "total": 0})
    client.simulate_get("/api/contacts")
    assert sent(rpc, "list_contacts") == ({"limit": 100, "offset": 0, "search": None,
                                           "company": None, "sort": "-created_at"},)


@pytest.mark.parametrize("sort, expected", [
    ("-lastContacted", "-last_contacted"), ("updatedAt", "updated_at"), ("company", "company"),
    ("-role", "-role"),
])
def test_sort_reaches_the_service_in_snake_case(client, rpc, sort, expected):
    rpc.answer("contacts", "list_contacts", {"items": [], "total": 0})
    assert client.simulate_get("/api/contacts", query_string="sort=" + sort).status_code == 200
    (query,) = sent(rpc, "list_contacts")
    assert query["sort"] == expected


def test_list_is_a_bare_array_with_total_count_and_a_next_link_keeping_the_filters(client, rpc):
    rpc.answer("contacts", "list_contacts", {"items": [contact(), contact(id="c2")], "total": 5})
    result = client.simulate_get("/api/contacts", query_string="limit=2&company=Acme&search=bo")
    assert result.status_code == 200
    assert result.json == [contact(), contact(id="c2")]
    assert result.headers["X-Total-Count"] == "5"
    (query,) = sent(rpc, "list_contacts")
    assert query["company"] == "Acme" and query["search"] == "bo"
    url = result.headers["Link"].split(">")[0][1:]
    assert urlsplit(url).scheme and urlsplit(url).path == "/api/contacts"
    assert parse_qs(urlsplit(url).query) == {"limit": ["2"], "offset": ["2"], "company": ["Acme"],
                                             "search": ["bo"]}


def test_last_page_has_no_link(client, rpc):
    rpc.answer("contacts", "list_contacts", {"items": [], "total": 5})
    result = client.simulate_get("/api/contacts", query_string="offset=10")
    assert result.json == [] and result.headers["X-Total-Count"] == "5"
    assert "Link" not in result.headers


# -- history -----------------------------------------------------------------

def test_history_is_paged(client, rpc):
    rpc.answer("contacts", "list_history", {"items": [history_item(0), history_item(1)], "total": 3})
    result = client.simulate_get("/api/contacts/abc/history", query_string="limit=2")
    assert result.status_code == 200
    assert result.json == [history_item(0), history_item(1)]
    assert result.headers["X-Total-Count"] == "3" and 'rel="next"' in result.headers["Link"]
    assert sent(rpc, "list_history") == ("abc", 2, 0)


def test_logging_history_is_201_with_the_item(client, rpc):
    rpc.answer("contacts", "log_history", history_item())
    body = {"type": "meeting", "title": "Review", "timestamp": "2024-03-10T10:00:00Z"}
    result = client.simulate_post("/api/contacts/abc/history", json=body)
    assert result.status_code == 201
    assert result.headers["Location"].endswith("/api/contacts/abc/history")
    assert result.json == history_item()
    assert sent(rpc, "log_history") == ("abc", body)


@pytest.mark.parametrize("body, field", [
    ({"type": "status_change", "title": "x"}, "type"),
    ({"type": "telepathy", "title": "x"}, "type"),
    ({"type": "call", "title": ""}, "title"),
    ({"type": "call", "title": "x", "timestamp": "soon"}, "timestamp"),
    ({"type": "call", "title": "x", "contactId": "abc"}, "contactId"),
])
def test_invalid_history_body_is_422_naming_the_field(client, rpc, body, field):
    result = client.simulate_post("/api/contacts/abc/history", json=body)
    assert result.status_code == 422
    assert fields(result) == [field]
    assert rpc.calls == []


def test_read_only_fields_of_a_history_item_are_dropped(client, rpc):
    rpc.answer("contacts", "log_history", history_item())
    result = client.simulate_post("/api/contacts/abc/history",
                                  json={"id": "h9", "type": "call", "title": "Intro"})
    assert result.status_code == 201
    assert sent(rpc, "log_history") == ("abc", {"type": "call", "title": "Intro"})


# -- the contacts service's errors ---------------------------------------------

def test_contact_not_found_is_404(client, rpc):
    rpc.fail("contacts", "get_contact", remote("contacts.exceptions.ContactNotFound",
                                               {"description": "No contact with this id."}))
    result = client.simulate_get("/api/contacts/abc")
    assert result.status_code == 404
    assert result.json == {"title": "Not Found", "description": "No contact with this id."}


def test_invalid_contact_is_422_with_the_services_errors(client, rpc):
    errors = [{"field": "type", "message": "contacts have no status to change"}]
    rpc.fail("contacts", "log_history", remote("contacts.exceptions.InvalidContact",
                                               {"description": "type: ...", "errors": errors}))
    result = client.simulate_post("/api/contacts/abc/history", json={"type": "call", "title": "x"})
    assert result.status_code == 422
    assert result.json["errors"] == errors


# -- the OpenAPI document ------------------------------------------------------

@pytest.fixture
def doc(anon):
    return anon.simulate_get("/api/openapi.json").json


def schema_of(doc, node):
    ref = node["content"]["application/json"]["schema"]["$ref"]
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_document_lists_the_contact_routes(doc):
    assert set(doc["paths"]["/api/contacts"]) == {"get", "post"}
    assert set(doc["paths"]["/api/contacts/{id}"]) == {"get", "patch", "delete"}
    assert set(doc["paths"]["/api/contacts/{id}/history"]) == {"get", "post"}


def test_contact_read_only_fields_are_marked_and_not_in_the_bodies(doc):
    representation = doc["components"]["schemas"]["Contact"]
    for name in READ_ONLY:
        assert representation["properties"][name].get("readOnly") is True, name
    create = schema_of(doc, doc["paths"]["/api/contacts"]["post"]["requestBody"])
    assert {"name", "email"} <= set(create["required"])
    update = schema_of(doc, doc["paths"]["/api/contacts/{id}"]["patch"]["requestBody"])
    assert not update.get("required")
    for body in (create, update):
        assert not set(READ_ONLY) & set(body["properties"])
        assert {"role", "company", "phone", "notes"} <= set(body["properties"])


def test_contact_list_documents_its_filters(doc):
    params = {p["name"] for p in doc["paths"]["/api/contacts"]["get"]["parameters"]}
    assert {"search", "company", "sort", "limit", "offset"} <= params
