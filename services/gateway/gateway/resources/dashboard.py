"""/api/dashboard: figures and charts, served by the analytics service."""
from gateway.errors import bad_request
from gateway.http import validate_query
from gateway.openapi import operation
from gateway.schemas.dashboard import (DashboardQuery, RevenueChartQuery, RevenuePoint,
                                       SourcePoint, Stats, resolve_range)

TAGS = ["dashboard"]
ERRORS = ("400",)


def date_range(req, model):
    """The query validated, and its (start, end) as ISO strings: 400 on a bad
    date or a start after the end."""
    query = validate_query(req, model)
    found = resolve_range(query)
    if found is None:
        raise bad_request("Bad query parameter: startDate is after endDate.",
                          errors=[{"field": "startDate", "message": "must not be after endDate"}])
    return query, found[0].isoformat(), found[1].isoformat()


class DashboardStats:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Revenue, active leads, conversion rate and link clicks, each with its change "
               "against the previous period", query=DashboardQuery, response=Stats,
               errors=ERRORS, tags=TAGS)
    def on_get(self, req, resp):
        _, start, end = date_range(req, DashboardQuery)
        resp.media = self.rpc(req, "analytics", "stats", start, end)


class RevenueChart:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Revenue per day, ISO week or month; every bucket present, zeros included",
               query=RevenueChartQuery, response=RevenuePoint, many=True, errors=ERRORS,
               tags=TAGS)
    def on_get(self, req, resp):
        query, start, end = date_range(req, RevenueChartQuery)
        resp.media = self.rpc(req, "analytics", "revenue_chart", start, end, query["interval"])


class SourcesChart:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Leads created in the range by source, largest first", query=DashboardQuery,
               response=SourcePoint, many=True, errors=ERRORS, tags=TAGS)
    def on_get(self, req, resp):
        _, start, end = date_range(req, DashboardQuery)
        resp.media = self.rpc(req, "analytics", "sources_chart", start, end)
