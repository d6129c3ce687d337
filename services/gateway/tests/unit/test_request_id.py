"""X-Request-ID: echoed or generated, and passed on to the services."""
import re

import pytest


@pytest.fixture
def listed(rpc):
    rpc.answer("leads", "list_leads", {"items": [], "total": 0})


def test_sane_request_id_is_echoed(client, listed):
    result = client.simulate_get("/api/leads", headers={"X-Request-ID": "req-42.a:b_c"})
    assert result.headers["X-Request-ID"] == "req-42.a:b_c"


@pytest.mark.parametrize("given", [None, "", "has spaces", "x" * 65, "<script>", "a\u00e9b"])
def test_missing_or_insane_request_id_is_replaced(client, listed, given):
    headers = {"X-Request-ID": given} if given is not None else {}
    result = client.simulate_get("/api/leads", headers=headers)
    generated = result.headers["X-Request-ID"]
    assert generated != given
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", generated)


def test_generated_request_ids_differ(client, listed):
    first = client.simulate_get("/api/leads").headers["X-Request-ID"]
    second = client.simulate_get("/api/leads").headers["X-Request-ID"]
    assert first != second


def test_request_id_is_on_error_responses(anon):
    result = anon.simulate_get("/api/leads", headers={"X-Request-ID": "req-401"})
    assert result.status_code == 401
    assert result.headers["X-Request-ID"] == "req-401"


def test_request_id_reaches_the_service_in_the_call_id_stack(client, rpc, listed):
    client.simulate_get("/api/leads", headers={"X-Request-ID": "req-42"})
    stack = rpc.only_call("leads", "list_leads").context["call_id_stack"]
    assert stack and "req-42" in stack[-1]


def test_generated_request_id_reaches_the_service(client, rpc, listed):
    result = client.simulate_get("/api/leads")
    stack = rpc.only_call("leads", "list_leads").context["call_id_stack"]
    assert result.headers["X-Request-ID"] in stack[-1]
