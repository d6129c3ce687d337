"""Recompute the lead aggregates from the leads service's current data
(`make rebuild-analytics`; docs/analytics.md, "Rebuild").

`rebuild(tx_factory, fetch_page)` runs in ONE transaction: it takes
`LOCK TABLE lead_facts, daily_leads, daily_closed IN EXCLUSIVE MODE` (readers
still see the old figures; event handlers wait, then fold on top of the
rebuilt facts, where the version check drops what the rebuild already holds),
deletes every `lead_facts` row but the tombstones (so a late event never
resurrects a deleted lead) and every `daily_leads` / `daily_closed` row, then
folds each exported lead with the event path's rules (`aggregates.decide`,
`aggregates.delta`, `handlers.apply_delta`). A failure rolls everything back:
the old figures stay. `processed_events` and `campaign_days` are not touched
(campaign rows come from the campaigns service's Meta sync; their rebuild
comes with it).

    python -m analytics.rebuild [--page-size 1000] [--progress-every 1000]

reads AMQP_URI, DATABASE_URL and CRM_DB_PREFIX, pages through
`leads.export_leads` over RPC and writes `<prefix>_analytics` directly.
"""
import argparse
import sys
import time
import uuid

import sqlalchemy as sa

from analytics import aggregates as agg
from analytics import handlers
from analytics.models import LEAD_FACTS

LOCK = "LOCK TABLE lead_facts, daily_leads, daily_closed IN EXCLUSIVE MODE"
CLEAR = ("DELETE FROM daily_leads", "DELETE FROM daily_closed",
         "DELETE FROM lead_facts WHERE NOT deleted")


def _add(total, part):
    """Sum a delta dict (shaped like aggregates.contributions) into `total`."""
    for key, values in part.items():
        old = total.get(key, (0,) * len(values))
        total[key] = tuple(a + b for a, b in zip(old, values))


def _fold_page(tx, leads):
    """Fold one page of lead snapshots; returns (folded, skipped)."""
    incoming, skipped = {}, 0
    for lead in leads:
        try:
            incoming[uuid.UUID(str(lead.get("id")))] = agg.fact_from_lead(lead)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            print("rebuild: skipped an unusable lead %r: %s" % (lead.get("id"), exc),
                  file=sys.stderr, flush=True)
            skipped += 1
    if not incoming:
        return 0, skipped
    rows = tx.session.execute(sa.select(LEAD_FACTS)
                              .where(LEAD_FACTS.c.lead_id.in_(list(incoming)))).mappings()
    stored = {row["lead_id"]: handlers.fact_from_row(row) for row in rows}   # tombstones only
    leads_delta, closed_delta, new_rows = {}, {}, []
    for lead_id, fact in incoming.items():
        before = stored.get(lead_id)
        if agg.decide(before, fact) is not fact:
            continue                           # a tombstone wins, as for an event
        part_leads, part_closed = agg.delta(before, fact)
        _add(leads_delta, part_leads)
        _add(closed_delta, part_closed)
        new_rows.append(dict(lead_id=lead_id, **handlers.fact_values(fact)))
    if new_rows:
        tx.session.execute(sa.insert(LEAD_FACTS), new_rows)
    nonzero = lambda d: {k: v for k, v in sorted(d.items()) if any(v)}   # noqa: E731
    handlers.apply_delta(tx, nonzero(leads_delta), nonzero(closed_delta))
    return len(incoming), skipped


def rebuild(tx_factory, fetch_page, page_size=1000, progress_every=1000, out=None):
    """Recompute lead_facts, daily_leads and daily_closed from the leads that
    `fetch_page(after_id, limit)` returns ({"items": [lead JSON], "next": id
    or None}, as leads.export_leads), in one transaction of
    `tx_factory()` (a crm_common.db.UnitOfWork). Prints a progress line
    every `progress_every` leads. Returns {"leads", "skipped", "pages", "seconds"}."""
    out = out or sys.stdout
    started = time.monotonic()
    folded = skipped = pages = 0
    next_report = progress_every
    with tx_factory() as tx:
        tx.session.execute(sa.text(LOCK))
        for statement in CLEAR:
            tx.session.execute(sa.text(statement))
        after = None
        while True:
            page = fetch_page(after, page_size)
            pages += 1
            done, bad = _fold_page(tx, page.get("items") or [])
            folded, skipped = folded + done, skipped + bad
            if progress_every and folded >= next_report:     # a line per N leads (per page at most)
                elapsed = max(time.monotonic() - started, 1e-9)
                print("rebuild: %d leads folded (%.0f leads/s)" % (folded, folded / elapsed),
                      file=out, flush=True)
                next_report = (folded // progress_every + 1) * progress_every
            after = page.get("next")
            if after is None:
                break
        tx.commit()
    return {"leads": folded, "skipped": skipped, "pages": pages,
            "seconds": round(time.monotonic() - started, 3)}


# ---- the command ------------------------------------------------------------

def _rpc_fetch(cluster):
    def fetch(after_id, limit):
        return cluster.leads.export_leads(after_id=after_id, limit=limit)
    return fetch


def main(argv=None):
    from nameko.exceptions import RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy
    from sqlalchemy.orm import sessionmaker

    from analytics.dependencies import ALEMBIC_DIR
    from crm_common.config import Settings
    from crm_common.db import UnitOfWork
    from crm_common.migrations import prepare

    parser = argparse.ArgumentParser(prog="python -m analytics.rebuild", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--progress-every", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=30.0, help="per RPC call (s)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    dsn = prepare(settings, "analytics", ALEMBIC_DIR)       # the analytics service's own database
    engine = sa.create_engine(dsn, poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"})
    factory = sessionmaker(engine, expire_on_commit=False)
    print("rebuild: %s from the leads service (%s)" % (settings.database_name("analytics"),
                                                       settings.amqp_uri.rsplit("@", 1)[-1]),
          flush=True)
    try:
        with ClusterRpcProxy({"AMQP_URI": settings.amqp_uri}, timeout=args.timeout) as cluster:
            summary = rebuild(lambda: UnitOfWork(factory), _rpc_fetch(cluster),
                              page_size=args.page_size, progress_every=args.progress_every)
    except (UnknownService, RpcTimeout) as exc:
        print("rebuild: failed, nothing changed: the leads service did not answer (%s: %s)"
              % (type(exc).__name__, exc), file=sys.stderr, flush=True)
        return 1
    finally:
        engine.dispose()
    print("rebuild: done: %(leads)d leads folded in %(seconds).1f s (%(pages)d pages, "
          "%(skipped)d skipped)" % summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
