"""The Meta sync against real PostgreSQL and a fake Graph API over real HTTP."""
import pytest
import sqlalchemy as sa

from campaigns.exceptions import GraphRefused, SyncRunning
from campaigns.service import SYNC_LOCK_KEY, CampaignsService
from crm_common.testing import database_engine, entrypoint_caller


@pytest.fixture
def container(container_factory, service_config, graph):
    config = dict(service_config, META_GRAPH_URL=graph.url, META_ACCESS_TOKEN="tok",
                  META_AD_ACCOUNT_ID="123", META_RETRY_BACKOFF=0, META_THROTTLE_BACKOFF=0,
                  META_MAX_ATTEMPTS=3)
    container = container_factory(CampaignsService, config)
    container.start()
    engine = database_engine(container)
    with engine.begin() as conn:      # each test starts from an empty account
        conn.execute(sa.text("TRUNCATE campaigns CASCADE"))
    return container


@pytest.fixture
def call(container):
    return entrypoint_caller(container)


@pytest.fixture
def db(container):
    return database_engine(container)


def campaign(graph, cid, status="ACTIVE", objective="OUTCOME_SALES"):
    graph.campaigns[cid] = {"id": cid, "name": "Camp " + cid, "status": status,
                            "objective": objective}


def day(graph, cid, date, spend="10.00", clicks="5", leads=None, revenue=None):
    row = {"campaign_id": cid, "date_start": date, "date_stop": date, "spend": spend,
           "impressions": "100", "clicks": clicks, "actions": [], "action_values": []}
    if leads:
        row["actions"].append({"action_type": "lead", "value": leads})
    if revenue:
        row["action_values"].append({"action_type": "purchase", "value": revenue})
    graph.insights.append(row)
    return row


def days_of(db, cid):
    with db.connect() as conn:
        return conn.execute(sa.text(
            "SELECT d.date::text, d.spend, d.clicks, d.leads, d.revenue FROM campaign_days d"
            " JOIN campaigns c ON c.id = d.campaign_id WHERE c.meta_campaign_id = :m"
            " ORDER BY d.date"), {"m": cid}).all()


def test_sync_follows_every_page_and_stores_one_row_per_day(call, graph, db, event_tap):
    tap = event_tap("campaigns", "campaign_synced")
    for i in range(3):
        campaign(graph, "c%d" % i)
    for date in ("2024-03-01", "2024-03-02", "2024-03-03"):
        day(graph, "c0", date, spend="12.34", leads="2", revenue="50.5")
    day(graph, "c1", "2024-03-01")
    result = call("sync_now")
    assert result["status"] == "ok" and result["campaigns"] == 3 and result["days"] == 4
    assert result["finishedAt"].endswith("Z")
    assert len(graph.seen("/act_123/campaigns")) == 2 and len(graph.seen("/insights")) == 2
    assert graph.seen("/insights")[0]["date_preset"] == "maximum"
    rows = days_of(db, "c0")
    assert [r[0] for r in rows] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert str(rows[0][1]) == "12.34" and rows[0][3] == 2 and str(rows[0][4]) == "50.5"
    _, body = tap.wait(lambda key, body: body["campaign"]["metaCampaignId"] == "c0")
    assert body["campaign"]["status"] == "active" and body["campaign"]["objective"] == "Sales"
    assert [d["date"] for d in body["daily"]] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert body["daily"][0] == {"date": "2024-03-01", "spend": 12.34, "impressions": 100,
                                "clicks": 5, "leads": 2, "revenue": 50.5}


def test_sync_twice_counts_once_and_later_syncs_use_a_window(call, graph, db, event_tap):
    tap = event_tap("campaigns", "campaign_synced")

    def c9_events():
        return [b for _, b, _ in tap.events if b["campaign"]["metaCampaignId"] == "c9"]

    campaign(graph, "c9")
    row = day(graph, "c9", "2024-03-01")
    call("sync_now")
    tap.wait(lambda key, body: body["campaign"]["metaCampaignId"] == "c9")
    call("sync_now")
    assert len(days_of(db, "c9")) == 1
    later = graph.seen("/insights")[-1]
    assert "date_preset" not in later and "time_range" in later
    row["clicks"] = "9"                 # Meta revised the day
    call("sync_now")
    assert days_of(db, "c9")[0][2] == 9
    tap.wait(lambda key, body: body["campaign"]["metaCampaignId"] == "c9"
             and [d["clicks"] for d in body["daily"]] == [9])
    # the unchanged second sync emitted nothing for c9 (the outbox publishes in order)
    assert [[d["clicks"] for d in b["daily"]] for b in c9_events()] == [[5], [9]]


def test_rows_of_an_unlisted_campaign_are_kept(call, graph, db):
    day(graph, "gone", "2024-03-01")
    call("sync_now")
    assert len(days_of(db, "gone")) == 1


def test_a_refused_token_stops_the_sync_and_writes_nothing(call, graph, db):
    campaign(graph, "c1")
    graph.token = "another"
    with pytest.raises(GraphRefused) as exc:
        call("sync_now")
    assert "OAuth" in str(exc.value) and exc.value.details["code"] == 190
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM campaigns")).scalar() == 0


def test_the_last_sync_is_kept_for_the_settings(call, graph, db):
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM sync_state"))
    assert call("last_sync") is None
    campaign(graph, "c1")
    call("sync_now")
    ok = call("last_sync")
    assert ok["status"] == "ok" and ok["error"] is None and ok["at"].endswith("Z")
    graph.token = "another"
    with pytest.raises(GraphRefused):
        call("sync_now")
    failed = call("last_sync")
    assert failed["status"] == "error" and "OAuth" in failed["error"]
    assert failed["at"] >= ok["at"]


def test_the_metrics_keep_the_last_successful_sync_after_a_failed_one(call, graph, db):
    from campaigns.dependencies import sync_metrics

    def metrics():
        return {(f.name, tuple(s.labels.items())): s.value
                for f in sync_metrics(db) for s in f.samples}

    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM sync_state"))
    assert metrics() == {}                          # no sync yet: nothing to say
    campaign(graph, "c1")
    call("sync_now")
    after_ok = metrics()
    last_ok = after_ok[("crm_meta_sync_last_success_timestamp_seconds", ())]
    assert after_ok[("crm_meta_sync_status", (("status", "ok"),))] == 1.0
    assert last_ok == after_ok[("crm_meta_sync_last_attempt_timestamp_seconds", ())]

    graph.token = "another"
    with pytest.raises(GraphRefused):
        call("sync_now")
    after_error = metrics()
    assert after_error[("crm_meta_sync_status", (("status", "error"),))] == 1.0
    assert after_error[("crm_meta_sync_status", (("status", "ok"),))] == 0.0
    assert after_error[("crm_meta_sync_last_success_timestamp_seconds", ())] == last_ok
    assert after_error[("crm_meta_sync_last_attempt_timestamp_seconds", ())] >= last_ok


def test_rate_limits_are_retried(call, graph, db):
    campaign(graph, "c1")
    day(graph, "c1", "2024-03-01")
    graph.fail_next.extend([(400, {"error": {"message": "slow down", "code": 17}}),
                            (500, {"error": {"message": "oops", "code": 2}})])
    assert call("sync_now")["days"] == 1


def test_exhausted_retries_are_reported(call, graph):
    graph.fail_next.extend([(400, {"error": {"message": "slow down", "code": 80004}})] * 3)
    with pytest.raises(GraphRefused) as exc:
        call("sync_now")
    assert "slow down" in str(exc.value)


def test_a_second_sync_while_one_runs_is_refused(call, db):
    with db.connect() as conn:
        with conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SYNC_LOCK_KEY})
            with pytest.raises(SyncRunning):
                call("sync_now")


def mine(result, cid):
    return next(c for c in result["items"] if c["metaCampaignId"] == cid)


def test_list_sums_days_and_derives_cpl_and_roas(call, graph):
    campaign(graph, "s1")
    day(graph, "s1", "2019-01-01", spend="100.00", clicks="120", leads="4", revenue="350.00")
    day(graph, "s1", "2019-01-02", spend="50.00", clicks="80", leads="1")
    campaign(graph, "s2", status="PAUSED", objective="OUTCOME_LEADS")
    day(graph, "s2", "2019-01-01", spend="0", clicks="0")
    call("sync_now")
    result = call("list_campaigns", {})
    assert result["total"] == 2
    c = mine(result, "s1")
    assert (c["spend"], c["impressions"], c["clicks"], c["leads"], c["revenue"]) == (
        150.0, 200, 200, 5, 350.0)
    assert c["cpl"] == 30.0 and c["roas"] == 2.33
    assert c["status"] == "active" and c["objective"] == "Sales"
    s = mine(result, "s2")
    assert s["cpl"] is None and s["roas"] is None and s["status"] == "paused"
    day1 = call("list_campaigns", {"start_date": "2019-01-01", "end_date": "2019-01-01"})
    assert mine(day1, "s1")["spend"] == 100.0 and mine(day1, "s1")["cpl"] == 25.0
    empty = call("list_campaigns", {"start_date": "2020-01-01", "end_date": "2020-01-31"})
    assert empty["total"] == 2 and mine(empty, "s1")["spend"] == 0.0
    assert [c["metaCampaignId"] for c in call("list_campaigns", {"status": ["paused"]})["items"]] \
        == ["s2"]
    by_spend = call("list_campaigns", {"sort": "-spend"})["items"]
    assert [c["metaCampaignId"] for c in by_spend] == ["s1", "s2"]
    assert len(call("list_campaigns", {"sort": "name", "limit": 1, "offset": 1})["items"]) == 1


def test_the_totals_without_a_range_follow_each_sync(call, graph):
    """The list without dates reads totals the sync keeps on the campaign: a
    re-sync that changes a day and adds one moves them, counting nothing twice."""
    campaign(graph, "t1")
    day(graph, "t1", "2019-03-01", spend="10.00", clicks="3", leads="1", revenue="40.00")
    call("sync_now")
    assert mine(call("list_campaigns", {}), "t1")["spend"] == 10.0
    day(graph, "t1", "2019-03-01", spend="25.00", clicks="3", leads="1", revenue="40.00")
    day(graph, "t1", "2019-03-02", spend="5.00", clicks="2", leads="1", revenue="10.00")
    call("sync_now")
    call("sync_now")                       # nothing new: nothing added again
    total = mine(call("list_campaigns", {}), "t1")
    ranged = mine(call("list_campaigns", {"start_date": "2000-01-01",
                                          "end_date": "2100-01-01"}), "t1")
    assert (total["spend"], total["clicks"], total["leads"], total["revenue"]) == (
        30.0, 5, 2, 50.0)
    assert {k: total[k] for k in ("spend", "impressions", "clicks", "leads", "revenue")} == {
        k: ranged[k] for k in ("spend", "impressions", "clicks", "leads", "revenue")}
    assert call("get_campaign_detail", total["id"])["spend"] == 30.0


def test_bad_list_queries_are_refused(call):
    from campaigns.exceptions import InvalidCampaignQuery

    for query in ({"sort": "password"}, {"start_date": "yesterday"},
                  {"start_date": "2024-02-01", "end_date": "2024-01-01"}, {"nope": 1}):
        with pytest.raises(InvalidCampaignQuery):
            call("list_campaigns", query)


def test_detail_has_every_day(call, graph):
    campaign(graph, "d1")
    day(graph, "d1", "2019-01-02", spend="5.5")
    day(graph, "d1", "2019-01-01", spend="4.5", leads="1")
    call("sync_now")
    cid = mine(call("list_campaigns", {}), "d1")["id"]
    detail = call("get_campaign_detail", cid)
    assert detail["spend"] == 10.0 and detail["cpl"] == 10.0
    assert [d["date"] for d in detail["daily"]] == ["2019-01-01", "2019-01-02"]
    from campaigns.exceptions import CampaignNotFound

    with pytest.raises(CampaignNotFound):
        call("get_campaign_detail", "not-an-id")


def test_the_timer_runs_a_sync_and_records_it(call, graph):
    campaign(graph, "timed")
    day(graph, "timed", "2024-04-01")
    call("sync_on_schedule")
    assert call("last_sync")["status"] == "ok"
    assert any(c["metaCampaignId"] == "timed" for c in call("list_campaigns", {})["items"])
