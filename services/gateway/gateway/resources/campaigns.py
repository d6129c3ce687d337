"""/api/campaigns: campaigns synced from Meta, their metrics, and a sync now."""
from gateway.errors import bad_request
from gateway.http import page, validate_query
from gateway.openapi import operation
from gateway.schemas.campaigns import Campaign, CampaignDetail, CampaignListQuery, SyncResult

TAGS = ["campaigns"]
# A sync reads every page of the Graph API (with bounded retries on rate
# limits), so it may take far longer than an ordinary call.
SYNC_TIMEOUT = 180.0
SORT_NAMES = {"lastSyncedAt": "last_synced_at"}


def to_service_sort(sort):
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    return ("-" if descending else "") + SORT_NAMES.get(name, name)


class Campaigns:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("List campaigns with spend, impressions, clicks, leads and revenue summed over "
               "their days in startDate..endDate (all synced days by default; every campaign "
               "listed, zeros where it has no day in range), cpl and roas",
               query=CampaignListQuery, response=Campaign, many=True, tags=TAGS)
    def on_get(self, req, resp):
        query = validate_query(req, CampaignListQuery)
        if query["start_date"] and query["end_date"] and query["start_date"] > query["end_date"]:
            raise bad_request("Bad query parameter: startDate is after endDate.",
                              errors=[{"field": "startDate", "message": "must not be after endDate"}])
        service_query = {"sort": to_service_sort(query["sort"]), "limit": query["limit"],
                         "offset": query["offset"]}
        if query["status"]:
            service_query["status"] = query["status"].split(",")
        for key in ("start_date", "end_date"):
            if query[key]:
                service_query[key] = query[key]
        result = self.rpc(req, "campaigns", "list_campaigns", service_query)
        page(req, resp, result, query["limit"], query["offset"])


class CampaignItem:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Read a campaign, its metrics over every synced day, and its daily rows",
               response=CampaignDetail, errors=("404",), tags=TAGS)
    def on_get(self, req, resp, id):
        resp.media = self.rpc(req, "campaigns", "get_campaign_detail", id)


class CampaignSync:
    def __init__(self, rpc):
        self.rpc = rpc

    # No idempotency key: a sync upserts Meta's numbers, so running it
    # again is its retry.
    @operation("Sync campaigns and daily insights from Meta now",
               response=SyncResult, errors=("409", "502"), tags=TAGS, idempotency_key=False,
               description="Reads every campaign and the daily insights (everything on the "
                           "first sync, then a rolling window of recent days) and upserts "
                           "them. 502 with Meta's message when the Graph API refuses (an "
                           "invalid token, code 190, ...) or stays unavailable through the "
                           "bounded retries; 409 \"a sync is running\" while another sync "
                           "(this route or the timer) holds the lock.")
    def on_post(self, req, resp):
        resp.media = self.rpc(req, "campaigns", "sync_now", timeout=SYNC_TIMEOUT)
