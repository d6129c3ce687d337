"""The Graph client against a fake Graph API over real HTTP."""
import datetime as dt

import pytest

from campaigns.graph import (GraphClient, GraphRefused, GraphThrottled, GraphTransient,
                             account_path, classify)


def client(graph, token="tok", account="123", **kwargs):
    sleeps = []
    kwargs.setdefault("max_attempts", 4)
    c = GraphClient(graph.url, token, account, sleep=sleeps.append, timeout=5, **kwargs)
    c.sleeps = sleeps
    return c


def error(code, message="boom"):
    return {"error": {"message": message, "type": "OAuthException", "code": code}}


def test_account_id_gets_its_prefix_once():
    assert account_path("123") == "act_123"
    assert account_path("act_123") == "act_123"
    with pytest.raises(ValueError):
        account_path(None)


def test_pages_are_followed_to_the_end_with_the_token_in_a_header(graph):
    for i in range(5):
        graph.campaigns[str(i)] = {"id": str(i), "name": "C%d" % i, "status": "ACTIVE",
                                   "objective": "OUTCOME_SALES"}
    rows = client(graph).campaigns()
    assert [r["id"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert len(graph.seen("/act_123/campaigns")) == 3
    assert all("access_token" not in q for _, q in graph.requests)


def test_insights_first_sync_takes_everything_later_a_window(graph):
    c = client(graph)
    assert c.insights() == []
    first = graph.seen("/insights")[-1]
    assert first["date_preset"] == "maximum" and first["level"] == "campaign"
    assert first["time_increment"] == "1" and "date_start" in first["fields"]
    c.insights(dt.date(2024, 3, 1), dt.date(2024, 3, 7))
    later = graph.seen("/insights")[-1]
    assert "date_preset" not in later
    assert later["time_range"] == '{"since":"2024-03-01","until":"2024-03-07"}'


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80000, 80004])
def test_rate_limits_back_off_and_retry(graph, code):
    graph.fail_next.extend([(400, error(code))] * 2)
    c = client(graph)
    assert c.campaigns() == []
    assert len(c.sleeps) == 2 and c.sleeps[1] > c.sleeps[0] > 0


@pytest.mark.parametrize("failure", [(500, error(1)), (400, error(2)), (503, b"oops"),
                                     (400, {"error": {"message": "x", "code": 100,
                                                      "is_transient": True}})])
def test_transient_errors_retry(graph, failure):
    graph.fail_next.append(failure)
    c = client(graph)
    assert c.campaigns() == []
    assert len(c.sleeps) == 1


def test_retries_are_bounded(graph):
    graph.fail_next.extend([(400, error(17, "User request limit reached"))] * 10)
    c = client(graph, max_attempts=3)
    with pytest.raises(GraphThrottled) as exc:
        c.campaigns()
    assert exc.value.code == 17 and "limit" in exc.value.message
    assert len(c.sleeps) == 2 and len(graph.requests) == 3


def test_backoff_is_capped(graph):
    graph.fail_next.extend([(400, error(4))] * 5)
    c = client(graph, max_attempts=6, throttle_backoff=10, max_backoff=25)
    c.campaigns()
    assert c.sleeps == [10, 20, 25, 25, 25]


def test_a_refused_token_stops_at_once(graph):
    c = client(graph, token="wrong")
    with pytest.raises(GraphRefused) as exc:
        c.campaigns()
    assert exc.value.code == 190 and "OAuth" in str(exc.value)
    assert c.sleeps == [] and len(graph.requests) == 1


def test_other_permanent_errors_are_refusals(graph):
    c = client(graph, account="999")
    with pytest.raises(GraphRefused) as exc:
        c.campaigns()
    assert exc.value.code == 100 and exc.value.status == 404


def test_an_unreachable_graph_is_transient(graph):
    graph.stop()
    c = client(graph, max_attempts=2)
    with pytest.raises(GraphTransient):
        c.campaigns()
    assert len(c.sleeps) == 1


def test_a_missing_token_is_refused():
    with pytest.raises(GraphRefused):
        GraphClient("http://127.0.0.1:1/v21.0", None, "123")


def test_classify_without_an_error_body():
    assert isinstance(classify(429, None), GraphThrottled)
    assert isinstance(classify(502, None), GraphTransient)
    assert isinstance(classify(403, None), GraphRefused)
