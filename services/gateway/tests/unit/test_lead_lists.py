"""GET /api/leads and the activity timeline: query parameters and paging
(contract section 2, list endpoints)."""
from urllib.parse import parse_qs, urlsplit

import pytest


@pytest.fixture
def listed(rpc, make_lead):
    def script(items=None, total=None, method="list_leads"):
        items = [make_lead(id="id-%d" % i) for i in range(2)] if items is None else items
        rpc.answer("leads", method, {"items": items, "total": len(items) if total is None else total})
    return script


def sent_query(rpc):
    (query,) = rpc.only_call("leads", "list_leads").args
    return query


@pytest.mark.parametrize("query", [
    "limit=0", "limit=1001", "limit=-1", "limit=x", "limit=1.5", "offset=x", "offset=-1",
    "sort=password", "sort=-password", "status=won", "status=new,won", "minScore=abc",
    "minScore=101", "offset=9223372036854775808", "status=" + "new," * 30,
])
def test_bad_query_parameter_is_400_json(client, rpc, query):
    result = client.simulate_get("/api/leads", query_string=query)
    assert result.status_code == 400
    assert result.json["title"] == "Bad Request"
    assert result.json["description"]
    assert rpc.calls == []


def test_bad_query_parameter_names_the_parameter(client, rpc):
    result = client.simulate_get("/api/leads", query_string="minScore=abc")
    assert [e["field"] for e in result.json["errors"]] == ["minScore"]


def test_default_paging_and_sort_reach_the_service(client, rpc, listed):
    listed()
    client.simulate_get("/api/leads")
    query = sent_query(rpc)
    assert query["limit"] == 100 and query["offset"] == 0
    assert query["sort"] == "-created_at"
    assert query["status"] is None


def test_status_list_reaches_the_service_as_a_list(client, rpc, listed):
    listed()
    assert client.simulate_get("/api/leads", query_string="status=new,qualified").status_code == 200
    assert sent_query(rpc)["status"] == ["new", "qualified"]


def test_single_status_reaches_the_service_as_a_list(client, rpc, listed):
    listed()
    client.simulate_get("/api/leads", query_string="status=closed")
    assert sent_query(rpc)["status"] == ["closed"]


@pytest.mark.parametrize("sort, expected", [
    ("-createdAt", "-created_at"), ("createdAt", "created_at"), ("-score", "-score"),
    ("updatedAt", "updated_at"), ("-lastInteractionAt", "-last_interaction_at"), ("name", "name"),
])
def test_sort_reaches_the_service_in_snake_case(client, rpc, listed, sort, expected):
    listed()
    assert client.simulate_get("/api/leads", query_string="sort=" + sort).status_code == 200
    assert sent_query(rpc)["sort"] == expected


def test_filters_reach_the_service_in_snake_case(client, rpc, listed):
    listed()
    client.simulate_get("/api/leads", query_string="minScore=50&ownerId=u1&search=acme&source=Web"
                                                   "&limit=1000&offset=3")
    query = sent_query(rpc)
    assert query["min_score"] == 50
    assert query["owner_id"] == "u1"
    assert query["search"] == "acme" and query["source"] == "Web"
    assert query["limit"] == 1000 and query["offset"] == 3


def test_list_is_a_bare_array_with_total_count_and_next_link(client, rpc, listed):
    listed(total=5)
    result = client.simulate_get("/api/leads", query_string="limit=2&offset=0")
    assert result.status_code == 200
    assert isinstance(result.json, list) and len(result.json) == 2
    assert result.headers["X-Total-Count"] == "5"
    link = result.headers["Link"]
    assert link.endswith('; rel="next"')
    url = link[link.index("<") + 1:link.index(">")]
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.netloc       # absolute
    assert parts.path == "/api/leads"
    assert parse_qs(parts.query) == {"limit": ["2"], "offset": ["2"]}


def test_next_link_keeps_the_filters(client, rpc, listed):
    listed(total=5)
    result = client.simulate_get("/api/leads", query_string="limit=2&status=new,qualified&sort=-score")
    url = result.headers["Link"].split(">")[0][1:]
    query = parse_qs(urlsplit(url).query)
    assert query["status"] == ["new,qualified"] and query["sort"] == ["-score"]
    assert query["offset"] == ["2"]


def test_last_page_has_no_link(client, rpc, make_lead, listed):
    listed(items=[make_lead()], total=5)
    result = client.simulate_get("/api/leads", query_string="limit=2&offset=4")
    assert result.headers["X-Total-Count"] == "5"
    assert "Link" not in result.headers


def test_offset_past_the_end_is_an_empty_array(client, rpc, listed):
    listed(items=[], total=5)
    result = client.simulate_get("/api/leads", query_string="offset=10")
    assert result.status_code == 200
    assert result.json == []
    assert result.headers["X-Total-Count"] == "5"
    assert "Link" not in result.headers


def test_activity_timeline_is_paged_too(client, rpc, listed):
    activity = [{"id": "a%d" % i, "type": "call", "title": "Call", "description": None,
                 "timestamp": "2024-03-10T10:00:00Z"} for i in range(2)]
    listed(items=activity, total=3, method="list_activity")
    result = client.simulate_get("/api/leads/L1/activity", query_string="limit=2")
    assert result.status_code == 200
    assert result.json == activity
    assert result.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in result.headers["Link"]
    assert rpc.only_call("leads", "list_activity").args == ("L1", 2, 0)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=x"])
def test_bad_activity_paging_is_400(client, rpc, query):
    assert client.simulate_get("/api/leads/L1/activity", query_string=query).status_code == 400
    assert rpc.calls == []


def test_nul_character_in_a_text_filter_is_400(client, rpc, listed):
    result = client.simulate_get("/api/leads", query_string="search=a%00b")
    assert result.status_code == 400
    assert rpc.calls == []
