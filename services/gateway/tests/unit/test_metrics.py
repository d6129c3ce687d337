"""GET /metrics: every answered request counted and timed by route template
and status, and the JSON access line naming the request."""
import logging

import pytest

from crm_common.testing import metric_samples


def scrape(client):
    result = client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/plain; version=")
    return metric_samples(result.text)


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_no_api_key_and_are_not_in_the_api_document(anon, client):
    assert anon.simulate_get("/metrics").status_code == 200
    assert "/metrics" not in client.simulate_get("/api/openapi.json").json["paths"]


def test_requests_are_counted_by_route_template_and_status(client, rpc, make_lead):
    rpc.answer("leads", "get_lead", make_lead(id="7"))
    before = scrape(client)
    for _ in range(3):
        assert client.simulate_get("/api/leads/7").status_code == 200
    assert client.simulate_get("/api/nowhere").status_code == 404
    after = scrape(client)

    route = dict(method="GET", route="/api/leads/{id}")
    assert value(after, "crm_http_requests_total", status="200", **route) - \
        value(before, "crm_http_requests_total", status="200", **route) == 3
    assert value(after, "crm_http_request_duration_seconds_count", **route) - \
        value(before, "crm_http_request_duration_seconds_count", **route) == 3
    # ids do not make series of their own; unknown paths share one
    assert not any("/api/leads/7" in dict(labels).get("route", "") for _, labels in after)
    unmatched = dict(method="GET", route="unmatched", status="404")
    assert value(after, "crm_http_requests_total", **unmatched) - \
        value(before, "crm_http_requests_total", **unmatched) == 1


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")     # falcon's WSGI validator
def test_unknown_methods_share_one_series(client):
    before = scrape(client)
    for method in ("BREW", "WHEN", "PROPFIND"):
        client.simulate_request(method, "/api/leads")
    after = scrape(client)
    assert not any(dict(labels).get("method") in ("BREW", "WHEN", "PROPFIND")
                   for _, labels in after)
    other = [k for k in after if k[0] == "crm_http_requests_total" and
             dict(k[1]).get("method") == "other" and dict(k[1]).get("route") == "/api/leads"]
    assert sum(after[k] for k in other) - sum(before.get(k, 0) for k in other) == 3


def test_refused_requests_are_counted_with_their_status(anon):
    before = scrape(anon)
    assert anon.simulate_get("/api/leads").status_code == 401
    labels = dict(method="GET", route="/api/leads", status="401")
    assert value(scrape(anon), "crm_http_requests_total", **labels) - \
        value(before, "crm_http_requests_total", **labels) == 1


def test_the_access_line_and_every_line_of_the_request_carry_its_correlation_id(
        client, rpc, log_lines):
    rpc.answer("leads", "list_leads", {"items": [], "total": 0})
    client.simulate_get("/api/leads", headers={"X-Request-ID": "req-corr-1"})
    [line] = [e for e in log_lines() if e["logger"] == "gateway.access"]
    assert line["correlation_id"] == line["request_id"] == "req-corr-1"
    assert line["route"] == "/api/leads" and line["status"] == 200 and line["method"] == "GET"
    assert line["service"] == "gateway" and line["duration_ms"] >= 0
    # and the call carried it to the service, beside nameko's call-id stack
    context = rpc.only_call("leads", "list_leads").context
    assert context["correlation_id"] == "req-corr-1"


def test_a_line_written_after_the_request_no_longer_names_it(client, rpc, log_lines):
    rpc.answer("leads", "list_leads", {"items": [], "total": 0})
    client.simulate_get("/api/leads", headers={"X-Request-ID": "req-corr-2"})
    logging.getLogger("gateway.test").warning("between requests")
    [line] = [e for e in log_lines() if e["message"] == "between requests"]
    assert "correlation_id" not in line and "request_id" not in line
