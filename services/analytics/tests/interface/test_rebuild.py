"""`analytics.rebuild` against real LeadsService and AnalyticsService
containers: after a rebuild from the leads' current data (fetched over RPC)
the dashboard's figures equal those built from the events.

The test has its own broker vhost and database prefix: the rebuild counts
every lead of the leads database, and every event in the analytics queues,
so leads made by other tests must not be there."""
import dataclasses
import datetime as dt
import io
import uuid

import pytest
import sqlalchemy as sa
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_hook
from sqlalchemy.orm import sessionmaker

from analytics import handlers
from analytics.dependencies import ALEMBIC_DIR
from analytics.rebuild import rebuild
from analytics.service import AnalyticsService
from crm_common.config import Settings
from crm_common.db import UnitOfWork
from crm_common.migrations import prepare
from crm_common.testing import delete_vhost, vhost_uri, wait_for
from crm_common.timefmt import parse_timestamp
from leads.service import LeadsService


@pytest.fixture
def config(service_config):
    """Its own vhost and databases (dropped with the run's: same prefix)."""
    tag = uuid.uuid4().hex[:6]
    vhost = "%s_rb_%s" % (service_config["CRM_DB_PREFIX"], tag)
    uri = vhost_uri(vhost)
    yield {**service_config, "AMQP_URI": uri,
           "CRM_DB_PREFIX": "%s_rb%s" % (service_config["CRM_DB_PREFIX"], tag)}
    if uri.rstrip("/").endswith("/" + vhost):
        delete_vhost(vhost)


@pytest.fixture
def analytics(config, container_factory):
    container = container_factory(AnalyticsService, config)
    container.start()          # first: its queues must be bound before leads publishes
    yield container
    container.stop()           # before the vhost goes


@pytest.fixture
def leads(analytics, config, container_factory):
    container = container_factory(LeadsService, config)
    container.start()
    yield container
    container.stop()


@pytest.fixture
def engine(analytics, config):
    settings = dataclasses.replace(Settings.from_env(), database_url=config["DATABASE_URL"],
                                   db_prefix=config["CRM_DB_PREFIX"])
    engine = sa.create_engine(prepare(settings, "analytics", ALEMBIC_DIR),
                              connect_args={"options": "-c timezone=UTC"})
    yield engine
    engine.dispose()


@pytest.fixture
def tx_factory(engine):
    factory = sessionmaker(engine, expire_on_commit=False)
    return lambda: UnitOfWork(factory)


@pytest.fixture
def proxy(leads, config):
    with ServiceRpcProxy("leads", config, timeout=10) as proxy:
        yield proxy


def caller(container):
    def call(method, *args):
        with entrypoint_hook(container, method) as hook:
            return hook(*args)
    return call


def rpc_fetch(proxy):
    return lambda after_id, limit: proxy.export_leads(after_id=after_id, limit=limit)


TODAY = dt.datetime.now(dt.timezone.utc).date()
RANGES = [(TODAY, TODAY), (TODAY - dt.timedelta(days=29), TODAY),
          (TODAY - dt.timedelta(days=1), TODAY - dt.timedelta(days=1))]


def figures(ask):
    out = []
    for start, end in RANGES:
        start, end = start.isoformat(), end.isoformat()
        out.append({"stats": ask("stats", start, end),
                    "charts": [ask("revenue_chart", start, end, i) for i in ("day", "week", "month")],
                    "sources": ask("sources_chart", start, end)})
    return out


def facts(engine):
    with engine.connect() as conn:
        return {str(r["lead_id"]): r for r in
                conn.execute(sa.text("SELECT * FROM lead_facts")).mappings()}


def wait_until_folded(engine, proxy, deleted=()):
    """Every current lead's fact has its current version; the deleted are tombstones."""
    current = proxy.export_leads(limit=5000)["items"]

    def folded():
        known = facts(engine)
        return all(lead["id"] in known and known[lead["id"]]["version"]
                   == parse_timestamp(lead["updatedAt"]) and not known[lead["id"]]["deleted"]
                   for lead in current) and all(known.get(i, {}).get("deleted") for i in deleted)
    wait_for(folded, timeout=20, what="analytics to fold every lead event")
    return current


def make_history(tell):
    """Leads created, closed, reopened, revalued, moved between sources, deleted."""
    email = lambda: "rb.%s@example.com" % uuid.uuid4().hex[:10]    # noqa: E731
    made = [tell("create_lead", {"name": "RB %d" % i, "email": email(),
                                 "source": ("Facebook", "Website", "Referral")[i % 3],
                                 "value": 100.0 * (i + 1)}) for i in range(9)]
    tell("create_lead", {"name": "Born closed", "email": email(), "status": "closed",
                         "value": 42.5})
    for lead in made[:5]:
        tell("update_lead", lead["id"], {"status": "closed"})
    tell("update_lead", made[1]["id"], {"status": "contacted"})            # reopened
    tell("update_lead", made[2]["id"], {"value": 1234.56})                 # revalued when closed
    tell("update_lead", made[3]["id"], {"source": "Website"})              # moved
    tell("delete_lead", made[4]["id"])                                     # closed, then deleted
    tell("delete_lead", made[6]["id"])                                     # open, deleted
    tell("update_lead", made[7]["id"], {"status": "qualified", "value": 5.0})
    return made, [made[4]["id"], made[6]["id"]]


def test_rebuild_reproduces_the_figures_built_from_events(analytics, leads, proxy, engine,
                                                         tx_factory):
    ask, tell = caller(analytics), caller(leads)
    made, deleted = make_history(tell)
    current = wait_until_folded(engine, proxy, deleted)
    from_events = figures(ask)
    assert from_events[0]["stats"]["revenue"]["value"] == pytest.approx(
        100.0 + 1234.56 + 400.0 + 42.5)
    assert from_events[0]["stats"]["active_leads"]["value"] == 4
    facts_before = facts(engine)

    # corrupt every aggregate: wrong facts, missing and invented daily rows
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE lead_facts SET value = value + 7, status = 'closed', "
                             "closed_day = created_day WHERE NOT deleted"))
        conn.execute(sa.text("DELETE FROM daily_closed"))
        conn.execute(sa.text("UPDATE daily_leads SET created = created * 3"))
        conn.execute(sa.text("INSERT INTO daily_leads VALUES (:d, 'Bogus', 5, 5)"),
                     {"d": TODAY - dt.timedelta(days=3)})
        conn.execute(sa.text("INSERT INTO lead_facts (lead_id, created_day, source, status, "
                             "value, deleted) VALUES (:i, :d, 'Ghost', 'new', 0, false)"),
                     {"i": uuid.uuid4(), "d": TODAY})
    assert figures(ask) != from_events

    out = io.StringIO()
    summary = rebuild(tx_factory, rpc_fetch(proxy), page_size=3, progress_every=3, out=out)
    assert summary["leads"] == len(current) == 8 and summary["skipped"] == 0
    assert summary["pages"] == 3                    # 3 + 3 + 2
    lines = out.getvalue().splitlines()
    assert [line.split(" leads folded")[0] for line in lines] == [
        "rebuild: 3", "rebuild: 6"]
    assert all("leads/s" in line for line in lines)

    assert figures(ask) == from_events
    after = facts(engine)
    assert after == facts_before                    # same facts; the ghost is gone
    assert all(after[i]["deleted"] for i in deleted)     # tombstones kept

    # a late (even newer) event for a deleted lead resurrects nothing
    ghost = {**made[6], "updatedAt": (dt.datetime.now(dt.timezone.utc)
                                      + dt.timedelta(hours=1)).isoformat()}
    for event_type in ("lead_created", "lead_updated", "lead_status_changed"):
        with tx_factory() as tx:
            assert handlers.apply_lead_event(tx, event_type, {"event_id": str(uuid.uuid4()),
                                                              "lead": ghost}) is False
    assert figures(ask) == from_events

    # and rebuilding again changes nothing
    rebuild(tx_factory, rpc_fetch(proxy), page_size=1000, progress_every=0, out=io.StringIO())
    assert figures(ask) == from_events and facts(engine) == facts_before


def test_events_during_a_rebuild_are_folded_after_it(analytics, leads, proxy, engine,
                                                     tx_factory):
    ask, tell = caller(analytics), caller(leads)
    made, deleted = make_history(tell)
    wait_until_folded(engine, proxy, deleted)
    fetch = rpc_fetch(proxy)
    changed = []

    def fetch_then_change(after_id, limit):
        page = fetch(after_id, limit)
        if not changed:     # after the export read them: the rebuild holds the old snapshots
            changed.append(tell("update_lead", made[0]["id"], {"value": 999.0}))
            changed.append(tell("update_lead", made[5]["id"], {"status": "closed"}))
            tell("delete_lead", made[8]["id"])
            deleted.append(made[8]["id"])
        return page

    rebuild(tx_factory, fetch_then_change, page_size=1000, progress_every=0, out=io.StringIO())
    wait_until_folded(engine, proxy, deleted)      # the waiting events went on top
    from_events = figures(ask)
    rebuild(tx_factory, fetch, progress_every=0, out=io.StringIO())
    assert figures(ask) == from_events
    assert from_events[0]["stats"]["revenue"]["value"] == pytest.approx(
        999.0 + 1234.56 + 400.0 + 600.0 + 42.5)


def test_a_failed_rebuild_changes_nothing(analytics, leads, proxy, engine, tx_factory):
    ask, tell = caller(analytics), caller(leads)
    made, deleted = make_history(tell)
    wait_until_folded(engine, proxy, deleted)
    before, facts_before = figures(ask), facts(engine)
    fetch = rpc_fetch(proxy)

    def failing(after_id, limit):
        if after_id is not None:
            raise RuntimeError("leads went away")
        return fetch(after_id, limit)

    with pytest.raises(RuntimeError):
        rebuild(tx_factory, failing, page_size=2, progress_every=0, out=io.StringIO())
    assert figures(ask) == before and facts(engine) == facts_before
