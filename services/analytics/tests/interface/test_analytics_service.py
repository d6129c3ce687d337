"""End to end through the broker: the leads service publishes, the analytics
service folds the events, and its RPCs reflect them."""
import datetime as dt
import uuid

import pytest
from nameko.testing.services import entrypoint_hook

from analytics.exceptions import InvalidQuery
from analytics.service import AnalyticsService
from crm_common.testing import wait_for
from leads.service import LeadsService


@pytest.fixture
def analytics(container_factory, service_config):
    container = container_factory(AnalyticsService, service_config)
    container.start()          # first: its queues must be bound before leads publishes
    return container


@pytest.fixture
def leads(analytics, container_factory, service_config):
    container = container_factory(LeadsService, service_config)
    container.start()
    return container


def caller(container):
    def call(method, *args):
        with entrypoint_hook(container, method) as hook:
            return hook(*args)
    return call


def test_stats_follow_leads_created_closed_and_deleted(analytics, leads):
    ask, tell = caller(analytics), caller(leads)
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    source = "Src-" + uuid.uuid4().hex[:8]
    before = ask("stats", today, today)
    made = [tell("create_lead", {"name": "E2E %d" % i, "email": "e2e.%s@example.com"
                                 % uuid.uuid4().hex[:10], "source": source,
                                 "value": 100.0 * (i + 1)}) for i in range(4)]
    for lead in made[:2]:
        tell("update_lead", lead["id"], {"status": "closed"})
    tell("delete_lead", made[3]["id"])

    def caught_up():
        now = ask("stats", today, today)
        return now if (now["revenue"]["value"] - before["revenue"]["value"] == pytest.approx(300.0)
                       and now["active_leads"]["value"] - before["active_leads"]["value"] == 1
                       ) else None

    wait_for(caught_up, timeout=15, what="stats to reflect 3 leads, 2 closed")
    sources = ask("sources_chart", today, today)
    assert {"name": source, "value": 3} in sources
    chart = ask("revenue_chart", today, today, "day")
    assert [p["date"] for p in chart] == [today] and chart[0]["value"] >= 300.0
    assert ask("ping") == {"status": "ok"}


def test_bad_dates_are_refused_over_rpc(analytics):
    with pytest.raises(InvalidQuery):
        caller(analytics)("stats", "2024-03-10", "2024-03-01")
