"""/api/dashboard: dates, defaults and the interval are checked before the
analytics service is called (contract section 3, "Dashboard")."""
import datetime as dt

import pytest

from gateway.rpc import RemoteError

ROUTES = {"/api/dashboard/stats": "stats", "/api/dashboard/charts/revenue": "revenue_chart",
          "/api/dashboard/charts/sources": "sources_chart"}
STATS = {key: {"value": 0, "change": 0.0, "trend": "flat"}
         for key in ("revenue", "active_leads", "conversion_rate", "link_clicks")}


@pytest.fixture
def scripted(rpc):
    rpc.answer("analytics", "stats", STATS)
    rpc.answer("analytics", "revenue_chart", [{"date": "2024-03-11", "label": "Mon", "value": 1.0}])
    rpc.answer("analytics", "sources_chart", [{"name": "Web", "value": 2}])
    return rpc


def today():
    return dt.datetime.now(dt.timezone.utc).date()


@pytest.mark.parametrize("path", sorted(ROUTES))
@pytest.mark.parametrize("query", [
    "startDate=2024-03-10&endDate=2024-03-01", "startDate=yesterday", "endDate=2024-13-40",
    "startDate=20240301", "startDate=2024-03-01T00:00:00", "endDate=1700000000", "startDate=",
    "startDate=2999-01-01",               # after the default end (today)
])
def test_bad_dates_are_400_and_call_nothing(client, rpc, path, query):
    result = client.simulate_get(path, query_string=query)
    assert result.status_code == 400, result.text
    assert result.json["title"] == "Bad Request" and result.json["errors"]
    assert rpc.calls == []


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_default_range_is_the_30_days_ending_today(client, scripted, path):
    result = client.simulate_get(path)
    assert result.status_code == 200, result.text
    call = scripted.only_call("analytics", ROUTES[path])
    assert call.args[:2] == ((today() - dt.timedelta(days=29)).isoformat(), today().isoformat())


def test_only_end_date_defaults_start_to_29_days_before(client, scripted):
    client.simulate_get("/api/dashboard/stats", query_string="endDate=2024-03-31")
    assert scripted.only_call("analytics", "stats").args == ("2024-03-02", "2024-03-31")


def test_a_one_day_range_is_allowed(client, scripted):
    result = client.simulate_get("/api/dashboard/stats",
                                 query_string="startDate=2024-03-01&endDate=2024-03-01")
    assert result.status_code == 200 and result.json == STATS
    assert scripted.only_call("analytics", "stats").args == ("2024-03-01", "2024-03-01")


def test_revenue_interval_defaults_to_day_and_passes_through(client, scripted):
    client.simulate_get("/api/dashboard/charts/revenue")
    assert scripted.only_call("analytics", "revenue_chart").args[2] == "day"
    scripted.calls.clear()
    result = client.simulate_get("/api/dashboard/charts/revenue", query_string="interval=week")
    assert result.status_code == 200
    assert result.json == [{"date": "2024-03-11", "label": "Mon", "value": 1.0}]
    assert scripted.only_call("analytics", "revenue_chart").args[2] == "week"


@pytest.mark.parametrize("interval", ["year", "DAY", ""])
def test_unknown_interval_is_400(client, rpc, interval):
    result = client.simulate_get("/api/dashboard/charts/revenue",
                                 query_string="interval=" + interval)
    assert result.status_code == 400
    assert [e["field"] for e in result.json["errors"]] == ["interval"]
    assert rpc.calls == []


def test_sources_are_passed_through(client, scripted):
    result = client.simulate_get("/api/dashboard/charts/sources")
    assert result.json == [{"name": "Web", "value": 2}]


def test_a_refusal_of_the_analytics_service_is_400(client, rpc):
    rpc.fail("analytics", "revenue_chart", RemoteError({
        "exc_type": "InvalidQuery", "value": "the range may span at most 3660 days",
        "exc_path": "analytics.exceptions.InvalidQuery",
        "exc_args": [{"description": "the range may span at most 3660 days",
                      "errors": [{"field": "endDate", "message": "too long"}]}]}))
    result = client.simulate_get("/api/dashboard/charts/revenue",
                                 query_string="startDate=1900-01-01&endDate=2024-01-01")
    assert result.status_code == 400
    assert result.json["errors"] == [{"field": "endDate", "message": "too long"}]


def test_routes_are_documented(client):
    doc = client.simulate_get("/api/openapi.json").json
    for path in ROUTES:
        op = doc["paths"][path]["get"]
        assert "400" in op["responses"]
        names = {p["name"] for p in op["parameters"]}
        assert {"startDate", "endDate"} <= names
    assert "interval" in {p["name"] for p in
                          doc["paths"]["/api/dashboard/charts/revenue"]["get"]["parameters"]}
