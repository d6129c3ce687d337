"""/api/campaigns: queries checked, calls passed to the campaigns service,
sync refusals as 502 and a running sync as 409."""
import pytest

from gateway.rpc import RemoteError

CAMPAIGN = {"id": "3f0c7a52-9d7c-4c2e-9a51-0d7f3c8b1a11", "metaCampaignId": "1200",
            "name": "Summer Sale", "status": "active", "objective": "Sales", "spend": 150.0,
            "impressions": 7000, "clicks": 200, "leads": 5, "revenue": 350.0, "cpl": 30.0,
            "roas": 2.33, "lastSyncedAt": "2024-03-10T10:00:00.000Z"}


def remote(exc_path, description):
    return RemoteError({"exc_path": exc_path, "exc_type": exc_path.rsplit(".", 1)[-1],
                        "value": description, "exc_args": [{"description": description}]})


def test_list_passes_filters_sort_and_paging(client, rpc):
    rpc.answer("campaigns", "list_campaigns", {"items": [CAMPAIGN], "total": 3})
    result = client.simulate_get("/api/campaigns", query_string=(
        "status=active,paused&startDate=2024-03-01&endDate=2024-03-07&sort=-lastSyncedAt"
        "&limit=1&offset=1"))
    assert result.status_code == 200, result.text
    assert result.json == [CAMPAIGN] and result.headers["X-Total-Count"] == "3"
    assert "Link" in result.headers
    (query,) = rpc.only_call("campaigns", "list_campaigns").args
    assert query == {"status": ["active", "paused"], "start_date": "2024-03-01",
                     "end_date": "2024-03-07", "sort": "-last_synced_at", "limit": 1,
                     "offset": 1}


def test_list_defaults(client, rpc):
    rpc.answer("campaigns", "list_campaigns", {"items": [], "total": 0})
    assert client.simulate_get("/api/campaigns").status_code == 200
    (query,) = rpc.only_call("campaigns", "list_campaigns").args
    assert query == {"sort": "-spend", "limit": 100, "offset": 0}


@pytest.mark.parametrize("query", ["startDate=yesterday", "endDate=2024-13-40",
                                   "startDate=2024-03-10&endDate=2024-03-01", "status=running",
                                   "sort=password", "limit=0"])
def test_bad_queries_are_400_and_call_nothing(client, rpc, query):
    result = client.simulate_get("/api/campaigns", query_string=query)
    assert result.status_code == 400, result.text
    assert rpc.calls == []


def test_detail(client, rpc):
    detail = dict(CAMPAIGN, daily=[{"date": "2024-03-01", "spend": 1.0, "impressions": 1,
                                    "clicks": 1, "leads": 0, "revenue": 0.0}])
    rpc.answer("campaigns", "get_campaign_detail", detail)
    result = client.simulate_get("/api/campaigns/" + CAMPAIGN["id"])
    assert result.status_code == 200 and result.json == detail
    assert rpc.only_call("campaigns", "get_campaign_detail").args == (CAMPAIGN["id"],)


def test_unknown_campaign_is_404(client, rpc):
    rpc.fail("campaigns", "get_campaign_detail",
             remote("campaigns.exceptions.CampaignNotFound", "No campaign with this id."))
    assert client.simulate_get("/api/campaigns/nope").status_code == 404


def test_sync_runs_with_a_long_timeout(client, rpc):
    answer = {"status": "ok", "campaigns": 2, "days": 4, "finishedAt": "2024-03-10T10:00:00.000Z"}
    rpc.answer("campaigns", "sync_now", answer)
    result = client.simulate_post("/api/campaigns/sync")
    assert result.status_code == 200 and result.json == answer
    assert rpc.only_call("campaigns", "sync_now").timeout >= 60


def test_a_refused_sync_is_502_with_metas_message(client, rpc):
    rpc.fail("campaigns", "sync_now", remote(
        "campaigns.exceptions.GraphRefused",
        "Meta refused the sync: Invalid OAuth access token. (code 190)"))
    result = client.simulate_post("/api/campaigns/sync")
    assert result.status_code == 502
    assert "OAuth" in result.json["description"] and "190" in result.json["description"]


def test_a_second_sync_is_409(client, rpc):
    rpc.fail("campaigns", "sync_now",
             remote("campaigns.exceptions.SyncRunning", "a sync is running"))
    result = client.simulate_post("/api/campaigns/sync")
    assert result.status_code == 409 and result.json["description"] == "a sync is running"


def test_routes_are_documented(client):
    paths = client.simulate_get("/api/openapi.json").json["paths"]
    assert {"get"} <= set(paths["/api/campaigns"]) and "get" in paths["/api/campaigns/{id}"]
    sync = paths["/api/campaigns/sync"]["post"]
    assert {"200", "409", "502"} <= set(sync["responses"])
