"""The event handlers on real PostgreSQL (no broker): redelivery, ordering,
deletion, reopening and value changes converge to a recount of the leads."""
import datetime as dt
import itertools
import uuid

import eventlet
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from analytics import handlers
from analytics.dependencies import ALEMBIC_DIR
from analytics.exceptions import InvalidQuery
from crm_common.config import Settings
from crm_common.db import UnitOfWork, make_psycopg_cooperative
from crm_common.events import envelope
from crm_common.migrations import prepare

SOURCE = "analytics_probe"
TABLES = ("processed_events", "lead_facts", "daily_leads", "daily_closed", "campaign_days")


@pytest.fixture(scope="module")
def engine():
    make_psycopg_cooperative()          # concurrent events really interleave
    dsn = prepare(Settings.from_env(), SOURCE, ALEMBIC_DIR)
    engine = sa.create_engine(dsn, pool_size=10, connect_args={"options": "-c timezone=UTC"})
    yield engine
    engine.dispose()


def truncate(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE %s" % ", ".join(TABLES)))


@pytest.fixture(autouse=True)
def empty_tables(engine):
    truncate(engine)


@pytest.fixture
def tx_factory(engine):
    factory = sessionmaker(engine, expire_on_commit=False)
    return lambda: UnitOfWork(factory)


@pytest.fixture
def apply(tx_factory):
    def apply(event_type, payload):
        with tx_factory() as tx:
            return handlers.apply_lead_event(tx, event_type, payload)
    return apply


@pytest.fixture
def read(tx_factory):
    def read(name, *args):
        with tx_factory() as tx:
            return getattr(handlers, name)(tx, *args)
    return read


def ts(day, hour=10):
    return "%sT%02d:00:00.000Z" % (day, hour)


class Lead:
    """Builds the snapshots (and events) the leads service would publish."""

    def __init__(self, created="2024-03-10", source="Web", value=100.0, status="new"):
        self.state = {"id": str(uuid.uuid4()), "name": "L", "email": "l@example.com",
                      "status": status, "source": source, "value": value,
                      "createdAt": ts(created), "updatedAt": ts(created),
                      "closedAt": ts(created) if status == "closed" else None}
        self.hour = 10

    def created(self):
        return "lead_created", envelope({"lead": dict(self.state)})

    def change(self, at, **fields):
        self.hour += 1
        old_status = self.state["status"]
        self.state.update(fields, updatedAt=ts(at, self.hour))
        if "status" in fields and fields["status"] != old_status:
            self.state["closedAt"] = ts(at, self.hour) if fields["status"] == "closed" else None
            return "lead_status_changed", envelope({"lead": dict(self.state),
                                                    "old_status": old_status,
                                                    "new_status": fields["status"]})
        return "lead_updated", envelope({"lead": dict(self.state), "changes": {}})

    def deleted(self):
        return "lead_deleted", envelope({"lead": dict(self.state)})


WEEK = ("2024-03-08", "2024-03-14")


def figures(read, start=WEEK[0], end=WEEK[1]):
    stats = read("stats", start, end)
    return ({k: v["value"] for k, v in stats.items()},
            read("revenue_chart", start, end, "day"), read("sources_chart", start, end))


def test_the_same_event_twice_counts_once(apply, read):
    lead = Lead(status="closed", value=250.0)
    event = lead.created()
    assert apply(*event) is True
    assert apply(*event) is False
    values, chart, sources = figures(read)
    assert values["revenue"] == 250.0 and values["conversion_rate"] == 100.0
    assert sources == [{"name": "Web", "value": 1}]


@pytest.fixture
def replay(engine, apply, read):
    """Apply events to emptied tables; the figures they give."""
    def replay(events):
        truncate(engine)
        for event in events:
            apply(*event)
        return figures(read)
    return replay


def recount(leads, start=WEEK[0], end=WEEK[1]):
    """The figures recounted straight from lead snapshots (None: deleted)."""
    start, end = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    day = lambda stamp: dt.date.fromisoformat(stamp[:10])
    alive = [lead for lead in leads if lead is not None]
    closed = [lead for lead in alive if lead["status"] == "closed"]
    made = [lead for lead in alive if start <= day(lead["createdAt"]) <= end]
    return {"revenue": sum(lead["value"] for lead in closed if start <= day(lead["closedAt"]) <= end),
            "active_leads": sum(1 for lead in alive if day(lead["createdAt"]) <= end
                                and not (lead["status"] == "closed" and day(lead["closedAt"]) <= end)),
            "conversion_rate": round(100.0 * sum(1 for lead in made if lead["status"] == "closed")
                                     / len(made), 1) if made else 0.0}


def test_status_changed_before_created_converges(replay):
    lead = Lead()
    events = [lead.created(), lead.change("2024-03-12", status="closed"),
              lead.change("2024-03-13", value=300.0)]
    in_order = replay(events)
    for order in itertools.permutations(events):
        assert replay(list(order)) == in_order
    values, chart, _ = in_order
    assert values["revenue"] == 300.0 and values["active_leads"] == 0
    assert values == dict(recount([lead.state]), link_clicks=0)
    assert [p["value"] for p in chart if p["date"] == "2024-03-12"] == [300.0]


def test_a_deleted_lead_leaves_every_figure(replay):
    kept = Lead(source="Ads", value=50.0)
    lead = Lead(value=400.0)
    base = [kept.created(), kept.change("2024-03-11", status="closed")]
    without = replay(base)
    events = base + [lead.created(), lead.change("2024-03-12", status="closed"), lead.deleted()]
    assert replay(events) == without
    # whatever order: a late create or update never resurrects it
    for order in itertools.permutations(events[2:]):
        assert replay(base + list(order)) == without


def test_reopening_leaves_the_revenue(replay):
    lead = Lead(value=120.0)
    values, chart, _ = replay([lead.created(), lead.change("2024-03-11", status="closed"),
                               lead.change("2024-03-12", status="proposal")])
    assert values["revenue"] == 0.0 and values["active_leads"] == 1
    assert values["conversion_rate"] == 0.0
    assert all(p["value"] == 0.0 for p in chart)


def test_a_value_change_after_closing_moves_the_revenue(replay):
    lead = Lead(value=120.0)
    values, chart, _ = replay([lead.created(), lead.change("2024-03-11", status="closed"),
                               lead.change("2024-03-13", value=500.0)])
    assert values["revenue"] == 500.0
    assert [p["value"] for p in chart if p["date"] == "2024-03-11"] == [500.0]


def test_a_lead_closed_after_the_range_is_active_at_its_end(replay, read):
    lead = Lead(created="2024-03-10")
    replay([lead.created(), lead.change("2024-03-20", status="closed")])
    assert read("stats", *WEEK)["active_leads"]["value"] == 1
    assert read("stats", "2024-03-15", "2024-03-21")["active_leads"]["value"] == 0


def test_many_leads_match_a_recount_and_the_previous_period(replay, read):
    leads, events = [], []
    for i in range(12):
        lead = Lead(created="2024-03-%02d" % (2 + i), source=("Web", "Ads", "Fair")[i % 3],
                    value=10.0 * (i + 1))
        events.append(lead.created())
        if i % 2:
            events.append(lead.change("2024-03-%02d" % (3 + i), status="closed"))
        if i % 5 == 0:
            events.append(lead.deleted())
            leads.append(None)
        else:
            leads.append(lead.state)
    values, _, sources = replay(list(reversed(events)))
    assert values == dict(recount(leads), link_clicks=0)
    stats = read("stats", *WEEK)
    previous = recount(leads, "2024-03-01", "2024-03-07")
    for key in ("revenue", "active_leads"):
        assert stats[key]["change"] == pytest.approx(round(
            (values[key] - previous[key]) / previous[key] * 100, 1))
    counts = [s["value"] for s in sources]
    assert counts == sorted(counts, reverse=True) and sum(counts) == sum(
        1 for lead in leads if lead and WEEK[0] <= lead["createdAt"][:10] <= WEEK[1])


def test_concurrent_events_of_one_lead_serialize(engine, tx_factory, read):
    lead = Lead(value=75.0)
    events = [lead.created()] + [lead.change("2024-03-11", value=75.0 + i) for i in range(1, 6)]
    events.append(lead.change("2024-03-12", status="closed"))

    def apply(event):
        with tx_factory() as tx:
            handlers.apply_lead_event(tx, *event)

    for thread in [eventlet.spawn(apply, e) for e in events * 2]:
        thread.wait()
    values = {k: v["value"] for k, v in read("stats", *WEEK).items()}
    assert values == dict(recount([lead.state]), link_clicks=0)
    assert values["revenue"] == 80.0


def test_campaign_clicks_count_in_range_and_a_resync_replaces_the_day(tx_factory, read):
    def synced(rows, cid="120000001"):
        with tx_factory() as tx:
            return handlers.apply_campaign_synced(tx, envelope(
                {"campaign": {"id": str(uuid.uuid4()), "metaCampaignId": cid},
                 "daily": [{"date": d, "clicks": c, "spend": s, "impressions": 0, "leads": 0,
                            "revenue": 0.0} for d, c, s in rows]}))

    synced([("2024-03-08", 100, 10.0), ("2024-03-15", 7, 1.0)])
    synced([("2024-03-09", 20, 2.0)], cid="120000002")
    synced([("2024-03-01", 5, 1.0)])
    assert read("stats", *WEEK)["link_clicks"] == {"value": 120, "change": 2300.0, "trend": "up"}
    synced([("2024-03-08", 40, 4.0)])                     # the day's new total replaces it
    assert read("stats", *WEEK)["link_clicks"]["value"] == 60
    with tx_factory() as tx:
        event = envelope({"campaign": {"metaCampaignId": "1"}, "daily": [
            {"date": "2024-03-10", "clicks": 9, "spend": 1}]})
        assert handlers.apply_campaign_synced(tx, event) is True
    with tx_factory() as tx:
        assert handlers.apply_campaign_synced(tx, event) is False


@pytest.mark.parametrize("args", [("2024-03-10", "2024-03-01"), ("yesterday", "2024-03-01"),
                                  ("2024-03-01", "2024-13-40")])
def test_bad_ranges_are_refused(read, args):
    for name in ("stats", "sources_chart"):
        with pytest.raises(InvalidQuery):
            read(name, *args)
    with pytest.raises(InvalidQuery):
        read("revenue_chart", *args, "day")


def test_bad_interval_and_too_long_chart_are_refused(read):
    with pytest.raises(InvalidQuery):
        read("revenue_chart", *WEEK, "year")
    with pytest.raises(InvalidQuery):
        read("revenue_chart", "1900-01-01", "2024-01-01", "day")
    assert len(read("revenue_chart", "0001-01-01", "0001-12-31", "month")) == 12
    assert read("stats", "0001-01-01", "0001-01-31")["revenue"]["value"] == 0.0


def test_malformed_events_are_refused_without_writing(apply):
    for event_type, payload in [("lead_created", {"event_id": str(uuid.uuid4())}),
                                ("lead_created", {"event_id": "x", "lead": Lead().state}),
                                ("lead_exploded", envelope({"lead": Lead().state}))]:
        with pytest.raises(handlers.MalformedEvent):
            apply(event_type, payload)
