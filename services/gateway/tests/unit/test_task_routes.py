"""/api/tasks: bodies, list queries and answers (contract sections 2 and 3).
A refused request never reaches the tasks service."""
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.rpc import RemoteError, ServiceUnavailable

TASK_ID = "5d2e8c1a-3b4f-4a6e-9c7d-1e2f3a4b5c6d"
LEAD_ID = "0b6f3f5e-8a59-4c1b-9d0e-2f7d1f7c9a11"
READ_ONLY = ("id", "completedAt", "createdAt", "updatedAt")


def task(**overrides):
    """A task as the tasks service returns it."""
    base = {"id": TASK_ID, "title": "Call Alice", "description": "", "dueDate": "2024-03-12",
            "priority": "high", "completed": False, "completedAt": None,
            "relatedToType": "lead", "relatedToId": LEAD_ID,
            "createdAt": "2024-03-10T10:00:00.000Z", "updatedAt": "2024-03-10T10:00:00.000Z"}
    base.update(overrides)
    return base


def remote(exc_type, details):
    service = "campaigns" if exc_type.startswith("Campaign") else "tasks"
    return RemoteError({"exc_path": "%s.exceptions.%s" % (service, exc_type), "exc_type": exc_type,
                        "exc_args": [details], "value": details["description"]})


def fields(result):
    return [e["field"] for e in result.json.get("errors", [])]


def sent(rpc, method):
    return rpc.only_call("tasks", method).args


# -- create ------------------------------------------------------------------

def test_create_is_201_with_location_and_the_task(client, rpc):
    rpc.answer("tasks", "create_task", task())
    result = client.simulate_post("/api/tasks", json={
        "title": "Call Alice", "dueDate": "2024-03-12", "priority": "high",
        "relatedToType": "lead", "relatedToId": LEAD_ID})
    assert result.status_code == 201
    assert result.headers["Location"].endswith("/api/tasks/%s" % TASK_ID)
    assert result.json == task()
    assert sent(rpc, "create_task") == ({"title": "Call Alice", "due_date": "2024-03-12",
                                         "priority": "high", "related_to_type": "lead",
                                         "related_to_id": LEAD_ID},)


@pytest.mark.parametrize("due", ["2024-03-12", "2024-03-12T15:00:00Z", "2024-03-12T15:00:00+02:00"])
def test_due_date_reaches_the_service_as_sent_so_its_kind_is_kept(client, rpc, due):
    rpc.answer("tasks", "create_task", task(dueDate=due))
    result = client.simulate_post("/api/tasks", json={"title": "x", "dueDate": due})
    assert result.status_code == 201
    assert sent(rpc, "create_task")[0]["due_date"] == due


@pytest.mark.parametrize("spelling", ["related_to_type", "relatedToType"])
def test_snake_case_is_accepted_and_sent_as_snake_case(client, rpc, spelling):
    rpc.answer("tasks", "create_task", task(relatedToType="general", relatedToId=None))
    client.simulate_post("/api/tasks", json={"title": "x", spelling: "general"})
    assert sent(rpc, "create_task") == ({"title": "x", "related_to_type": "general"},)


@pytest.mark.parametrize("body, field", [
    ({}, "title"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "x", "priority": "urgent"}, "priority"),
    ({"title": "x", "dueDate": "next tuesday"}, "dueDate"),
    ({"title": "x", "dueDate": "2024-02-30"}, "dueDate"),
    ({"title": "x", "dueDate": 20240312}, "dueDate"),
    ({"title": "x", "completed": "true"}, "completed"),
    ({"title": "x", "relatedToType": "deal"}, "relatedToType"),
    ({"title": "x", "relatedToId": "not-a-uuid"}, "relatedToId"),
    ({"title": "x", "description": None}, "description"),
    ({"title": "x", "assignee": "me"}, "assignee"),
], ids=["missing-title", "empty-title", "long-title", "unknown-priority", "words-as-due",
        "impossible-date", "number-as-due", "string-as-bool", "unknown-related-type", "bad-id",
        "null-description", "unknown-field"])
def test_invalid_create_body_is_422_naming_the_field(client, rpc, body, field):
    result = client.simulate_post("/api/tasks", json=body)
    assert result.status_code == 422
    assert field in fields(result)
    assert rpc.calls == []


def test_read_only_fields_are_dropped_so_a_read_task_can_be_sent_back(client, rpc):
    rpc.answer("tasks", "update_task", task(title="Call Alice again"))
    result = client.simulate_patch("/api/tasks/%s" % TASK_ID,
                                   json={**task(), "completedAt": None, "title": "Call Alice again"})
    assert result.status_code == 200
    task_id, changes = sent(rpc, "update_task")
    assert task_id == TASK_ID
    assert changes["title"] == "Call Alice again" and changes["related_to_id"] == LEAD_ID
    assert not set(changes) & {"id", "completed_at", "created_at", "updated_at", *READ_ONLY}


def test_the_service_refusing_a_relation_is_422_naming_related_to_id(client, rpc):
    errors = [{"field": "relatedToId", "message": "no lead with this id"}]
    rpc.fail("tasks", "create_task", remote("InvalidTask", {
        "description": "relatedToId: no lead with this id", "errors": errors}))
    result = client.simulate_post("/api/tasks", json={"title": "x", "relatedToType": "lead",
                                                      "relatedToId": LEAD_ID})
    assert result.status_code == 422
    assert result.json["errors"] == errors


def test_leads_being_down_is_503_with_retry_after(client, rpc):
    rpc.fail("tasks", "create_task", RemoteError({
        "exc_path": "crm_common.errors.Unavailable", "exc_type": "Unavailable",
        "exc_args": [{"description": "The leads service did not answer in time."}],
        "value": "The leads service did not answer in time."}))
    result = client.simulate_post("/api/tasks", json={"title": "x", "relatedToType": "lead",
                                                      "relatedToId": LEAD_ID})
    assert result.status_code == 503
    assert int(result.headers["Retry-After"]) > 0


# -- read, update, delete ----------------------------------------------------

def test_read_returns_what_the_service_returned(client, rpc):
    rpc.answer("tasks", "get_task", task())
    result = client.simulate_get("/api/tasks/%s" % TASK_ID)
    assert result.status_code == 200 and result.json == task()


def test_unknown_task_is_404(client, rpc):
    rpc.fail("tasks", "get_task", remote("TaskNotFound", {"description": "No task with this id."}))
    result = client.simulate_get("/api/tasks/nope")
    assert result.status_code == 404
    assert result.json == {"title": "Not Found", "description": "No task with this id."}


def test_patch_sends_only_the_fields_sent(client, rpc):
    done = task(completed=True, completedAt="2024-03-11T09:00:00.000Z")
    rpc.answer("tasks", "update_task", done)
    result = client.simulate_patch("/api/tasks/%s" % TASK_ID, json={"completed": True})
    assert result.status_code == 200 and result.json == done
    assert sent(rpc, "update_task") == (TASK_ID, {"completed": True})


def test_patch_may_clear_the_due_date(client, rpc):
    rpc.answer("tasks", "update_task", task(dueDate=None))
    assert client.simulate_patch("/api/tasks/x", json={"dueDate": None}).status_code == 200
    assert sent(rpc, "update_task") == ("x", {"due_date": None})


@pytest.mark.parametrize("field", ["title", "priority", "completed", "relatedToType",
                                   "description"])
def test_patch_with_null_for_a_required_field_is_422(client, rpc, field):
    result = client.simulate_patch("/api/tasks/x", json={field: None})
    assert result.status_code == 422
    assert field in fields(result)
    assert rpc.calls == []


def test_delete_is_204_with_an_empty_body(client, rpc):
    rpc.answer("tasks", "delete_task", task())
    result = client.simulate_delete("/api/tasks/%s" % TASK_ID)
    assert result.status_code == 204 and result.content == b""
    assert sent(rpc, "delete_task") == (TASK_ID,)


def test_tasks_being_down_is_503(client, rpc):
    rpc.fail("tasks", "get_task", ServiceUnavailable("tasks", "no answer within 1.0 s"))
    assert client.simulate_get("/api/tasks/x").status_code == 503


# -- lists -------------------------------------------------------------------

@pytest.fixture
def listed(rpc):
    def script(items=None, total=None):
        items = [task(id="t%d" % i) for i in range(2)] if items is None else items
        rpc.answer("tasks", "list_tasks", {"items": items,
                                           "total": len(items) if total is None else total})
    return script


def test_default_query_reaches_the_service(client, rpc, listed):
    listed()
    assert client.simulate_get("/api/tasks").status_code == 200
    assert sent(rpc, "list_tasks") == ({"limit": 100, "offset": 0, "completed": None,
                                        "overdue": None, "priority": None, "related_to_type": None,
                                        "related_to_id": None, "sort": "due_date"},)


def test_filters_reach_the_service_typed_and_in_snake_case(client, rpc, listed):
    listed()
    client.simulate_get("/api/tasks", query_string="completed=false&overdue=true&priority=high"
                        "&relatedToType=lead&relatedToId=%s&sort=-completedAt&limit=5" % LEAD_ID)
    (query,) = sent(rpc, "list_tasks")
    assert query["completed"] is False and query["overdue"] is True
    assert query["priority"] == "high" and query["related_to_type"] == "lead"
    assert query["related_to_id"] == LEAD_ID and query["sort"] == "-completed_at"
    assert query["limit"] == 5


@pytest.mark.parametrize("sort, expected", [
    ("dueDate", "due_date"), ("-dueDate", "-due_date"), ("title", "title"),
    ("-priority", "-priority"), ("createdAt", "created_at"), ("updatedAt", "updated_at"),
])
def test_sort_reaches_the_service_in_snake_case(client, rpc, listed, sort, expected):
    listed()
    assert client.simulate_get("/api/tasks", query_string="sort=" + sort).status_code == 200
    assert sent(rpc, "list_tasks")[0]["sort"] == expected


@pytest.mark.parametrize("query", [
    "completed=yes", "completed=1", "overdue=maybe", "priority=urgent", "relatedToType=deal",
    "relatedToId=x", "sort=password", "sort=-dueDateX", "limit=0", "limit=1001", "offset=-1",
])
def test_bad_query_parameter_is_400_naming_it(client, rpc, query):
    result = client.simulate_get("/api/tasks", query_string=query)
    assert result.status_code == 400
    assert result.json["title"] == "Bad Request"
    assert fields(result) == [query.split("=")[0]]
    assert rpc.calls == []


def test_list_is_a_bare_array_with_total_count_and_next_link(client, rpc, listed):
    listed(total=5)
    result = client.simulate_get("/api/tasks", query_string="limit=2&overdue=true")
    assert result.status_code == 200 and len(result.json) == 2
    assert result.headers["X-Total-Count"] == "5"
    url = result.headers["Link"].split(">")[0][1:]
    assert urlsplit(url).path == "/api/tasks"
    assert parse_qs(urlsplit(url).query) == {"limit": ["2"], "offset": ["2"], "overdue": ["true"]}


# -- the document ------------------------------------------------------------

def test_task_routes_are_documented(anon):
    doc = anon.simulate_get("/api/openapi.json").json
    assert set(doc["paths"]["/api/tasks"]) == {"get", "post"}
    assert set(doc["paths"]["/api/tasks/{id}"]) == {"get", "patch", "delete"}
    schemas = doc["components"]["schemas"]
    assert schemas["TaskCreate"]["required"] == ["title"]
    assert not set(READ_ONLY) & set(schemas["TaskCreate"]["properties"])
    for name in READ_ONLY:
        assert schemas["Task"]["properties"][name]["readOnly"] is True
    params = {p["name"] for p in doc["paths"]["/api/tasks"]["get"]["parameters"]}
    assert {"completed", "overdue", "priority", "relatedToType", "relatedToId", "sort"} <= params
