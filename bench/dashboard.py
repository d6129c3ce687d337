#!/usr/bin/env python3
"""Dashboard benchmark: GET /api/dashboard/stats (a 90-day range) through the
gateway with 10,000 and then 1,000,000 leads' worth of analytics aggregates,
next to a plain SQL aggregate over a leads table of the same size, in one run.

Starts a fresh stack (bin/stack.py, databases `crm_benchdash_*`, its own vhost
and port). For each size it fills, straight with SQL (INSERT ... SELECT
generate_series), the analytics database (`lead_facts`, one row per lead, and
`daily_leads` / `daily_closed` recomputed from them, so they are consistent)
and the leads database's `leads` table with the same leads (same ids, days,
statuses, sources, values), ANALYZEs both, then measures:

  * the gateway: wrk on /api/dashboard/stats (warm-up, then a measured run);
  * the analytics service's own SQL: the statements `handlers.stats` issues
    (captured from one call, so they follow the code), replayed with psycopg2;
  * the plain aggregate: one psycopg2 query computing revenue, active leads and
    conversion inputs for the range and the previous range from `leads`.

The two SQL figures exclude HTTP/RPC; they are DB-only and comparable to each
other; the gateway figure is compared with itself across sizes (growth).

    .venv/bin/python bench/dashboard.py [--small 10000] [--large 1000000]
                                        [--duration 10] [--connections 8] [--runs 50]

Prints a table, writes bench/results/dashboard.json. Exit status: 0 when it
measured (ratios off the aim are reported, not failed); 1 when the stack,
the databases or wrk could not be used. Everything started is stopped and the
databases and vhost are dropped on the way out.
"""
import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import read_path as rp  # noqa: E402  (also puts libs/ on sys.path)
from read_path import BenchError, http_get, measure, say  # noqa: E402

sys.path.insert(0, os.path.join(rp.ROOT, "services", "analytics"))

import psycopg2  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from crm_common.config import with_database  # noqa: E402
from crm_common.testing import drop_databases  # noqa: E402

PREFIX = "crm_benchdash"
RESULTS = rp.RESULTS
HISTORY_DAYS = 730           # the leads are spread over ~2 years ending at LAST_DAY
RANGE_DAYS = 90
CAMPAIGNS = 10               # campaign_days: 10 campaigns x HISTORY_DAYS (independent of leads)
AIM_GROWTH = 1.5             # 1M within 1.5x of 10k
AIM_PLAIN_OVER_ANALYTICS = 10.0   # "far faster": plain aggregate >= 10x the analytics SQL at 1M

# One lead per i, a pure function of i (hashint4), so leads 1..N have the same
# distribution whatever N is and the two databases get the same leads.
# %(last_end)s is the exclusive end (UTC) of the last day of data.
LEADS_CTE = """
WITH g AS (
  SELECT i,
         md5('benchdash-lead-' || i)::uuid AS id,
         (%(last_end)s::timestamptz - interval '1 second'
            - make_interval(secs => (hashint4(i) & 1073741823) %% (%(days)s * 86400))) AS created_at,
         (ARRAY['new','contacted','qualified','proposal','closed'])[1 + (hashint4(i * 3 + 1) & 1073741823) %% 5] AS status,
         (ARRAY['Manual','Website','Referral','Meta Ads','Trade Show','Cold Call'])[1 + (hashint4(i * 5 + 2) & 1073741823) %% 6] AS source,
         ((hashint4(i * 7 + 3) & 1073741823) %% 5000000) / 100.0 AS value,
         (hashint4(i * 11 + 4) & 1073741823) %% 101 AS score,
         make_interval(secs => (hashint4(i * 13 + 5) & 1073741823) %% (60 * 86400)) AS to_close
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
), l AS (
  SELECT g.*, CASE WHEN status = 'closed'
                   THEN least(created_at + to_close, %(last_end)s::timestamptz - interval '1 second')
              END AS closed_at
  FROM g
)
"""

FILL_LEADS = LEADS_CTE + """
INSERT INTO leads (id, name, email, status, source, score, value, created_at, updated_at, closed_at)
SELECT id, 'Lead ' || i, 'lead' || i || '@example.com', status, source, score, value,
       created_at, coalesce(closed_at, created_at), closed_at
FROM l
"""

FILL_FACTS = LEADS_CTE + """
INSERT INTO lead_facts (lead_id, created_day, source, status, value, closed_day, deleted, version)
SELECT id, (created_at AT TIME ZONE 'UTC')::date, source, status, value,
       (closed_at AT TIME ZONE 'UTC')::date, false, coalesce(closed_at, created_at)
FROM l
"""

# The daily tables as the event folding would leave them (docs/analytics.md):
# at most days x sources rows, whatever the number of leads.
REFILL_DAILY = """
TRUNCATE daily_leads, daily_closed;
INSERT INTO daily_leads (day, source, created, created_now_closed)
SELECT created_day, source, count(*), count(*) FILTER (WHERE status = 'closed')
FROM lead_facts WHERE NOT deleted AND created_day IS NOT NULL GROUP BY 1, 2;
INSERT INTO daily_closed (day, closed_count, revenue)
SELECT closed_day, count(*), sum(value)
FROM lead_facts WHERE NOT deleted AND status = 'closed' AND closed_day IS NOT NULL GROUP BY 1;
"""

FILL_CAMPAIGNS = """
INSERT INTO campaign_days (meta_campaign_id, day, clicks, spend)
SELECT 'cmp-' || c, d::date, (hashint4(c * 100000 + (d::date - '2000-01-01'::date)) & 1023),
       ((hashint4(c * 7 + (d::date - '2000-01-01'::date)) & 65535) / 100.0)
FROM generate_series(1, %(campaigns)s) AS c,
     generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
ON CONFLICT DO NOTHING
"""

# The plain aggregate: the stats' lead figures for the range and the previous
# range, straight from the leads table (one pass; end bounds exclusive).
PLAIN_SQL = """
SELECT
  coalesce(sum(value) FILTER (WHERE status = 'closed' AND closed_at >= %(s)s AND closed_at < %(e)s), 0),
  count(*) FILTER (WHERE created_at < %(e)s AND (status <> 'closed' OR closed_at >= %(e)s)),
  count(*) FILTER (WHERE created_at >= %(s)s AND created_at < %(e)s),
  count(*) FILTER (WHERE created_at >= %(s)s AND created_at < %(e)s AND status = 'closed'),
  coalesce(sum(value) FILTER (WHERE status = 'closed' AND closed_at >= %(ps)s AND closed_at < %(s)s), 0),
  count(*) FILTER (WHERE created_at < %(s)s AND (status <> 'closed' OR closed_at >= %(s)s)),
  count(*) FILTER (WHERE created_at >= %(ps)s AND created_at < %(s)s),
  count(*) FILTER (WHERE created_at >= %(ps)s AND created_at < %(s)s AND status = 'closed')
FROM leads
"""


def utc_midnight(day):
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)


# -- databases ---------------------------------------------------------------------------
def dsn(server_url, name):
    """A libpq DSN (psycopg2) for database `name` on the server."""
    return with_database(server_url, name).replace("postgresql+psycopg2://", "postgresql://")


def execute(conn_dsn, sql, params=None, autocommit=False):
    conn = psycopg2.connect(conn_dsn)
    try:
        conn.autocommit = autocommit
        with conn.cursor() as cur:
            cur.execute(sql, params)
        if not autocommit:
            conn.commit()
    finally:
        conn.close()


def wait_for_table(conn_dsn, table, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = psycopg2.connect(conn_dsn)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT to_regclass(%s)", (table,))
                    if cur.fetchone()[0]:
                        return
            finally:
                conn.close()
        except psycopg2.OperationalError:
            pass
        time.sleep(0.5)
    raise BenchError("table %s not there after %d s (%s)" % (table, timeout, conn_dsn))


def fill(leads_dsn, analytics_dsn, lo, hi, last_day):
    """Add leads lo..hi to both databases, recompute the daily tables, ANALYZE."""
    params = {"lo": lo, "hi": hi, "days": HISTORY_DAYS,
              "last_end": utc_midnight(last_day + dt.timedelta(days=1))}
    started = time.time()
    execute(leads_dsn, FILL_LEADS, params)
    execute(leads_dsn, "VACUUM ANALYZE leads", autocommit=True)
    leads_s = time.time() - started
    started = time.time()
    execute(analytics_dsn, FILL_FACTS, params)
    execute(analytics_dsn, REFILL_DAILY)
    for table in ("lead_facts", "daily_leads", "daily_closed", "campaign_days"):
        execute(analytics_dsn, "VACUUM ANALYZE %s" % table, autocommit=True)
    return leads_s, time.time() - started


def counts(conn_dsn, tables):
    conn = psycopg2.connect(conn_dsn)
    try:
        with conn.cursor() as cur:
            out = {}
            for t in tables:
                cur.execute("SELECT count(*) FROM %s" % t)
                out[t] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


# -- in-process SQL timing ------------------------------------------------------------------
def capture_stats_sql(analytics_url, start, end):
    """Run analytics.handlers.stats once (SQLAlchemy, as the service does) and
    return the statements it sent, with their parameters, and its result."""
    from analytics import handlers

    engine = sa.create_engine(analytics_url, poolclass=sa.pool.NullPool)
    captured = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", on_execute)

    class Tx:
        session = None

    try:
        tx = Tx()
        tx.session = sessionmaker(bind=engine)()
        try:
            result = handlers.stats(tx, start.isoformat(), end.isoformat())
        finally:
            tx.session.rollback()
            tx.session.close()
    finally:
        engine.dispose()
    return captured, result


def time_statements(conn_dsn, statements, runs):
    """Run `statements` (one unit: a stats read, or the plain query) `runs`
    times on one connection after 3 warm-up runs; per-unit ms and the last rows."""
    conn = psycopg2.connect(conn_dsn)
    conn.autocommit = True
    timings, rows = [], None
    try:
        with conn.cursor() as cur:
            for n in range(runs + 3):
                t0 = time.perf_counter()
                rows = []
                for sql, params in statements:
                    cur.execute(sql, params)
                    rows.append(cur.fetchall())
                if n >= 3:
                    timings.append((time.perf_counter() - t0) * 1000.0)
    finally:
        conn.close()
    timings.sort()
    return {"median_ms": statistics.median(timings),
            "p99_ms": timings[min(len(timings) - 1, int(round(0.99 * (len(timings) - 1))))],
            "min_ms": timings[0], "runs": runs}, rows


def time_handler(analytics_url, start, end, runs):
    """handlers.stats itself (SQLAlchemy Core + session, one connection kept)."""
    from analytics import handlers

    engine = sa.create_engine(analytics_url, pool_size=1)
    factory = sessionmaker(bind=engine)

    class Tx:
        session = None

    timings = []
    try:
        for n in range(runs + 3):
            tx = Tx()
            tx.session = factory()
            t0 = time.perf_counter()
            try:
                handlers.stats(tx, start.isoformat(), end.isoformat())
            finally:
                tx.session.rollback()
                tx.session.close()
            if n >= 3:
                timings.append((time.perf_counter() - t0) * 1000.0)
    finally:
        engine.dispose()
    timings.sort()
    return {"median_ms": statistics.median(timings),
            "p99_ms": timings[min(len(timings) - 1, int(round(0.99 * (len(timings) - 1))))],
            "runs": runs}


def plain_figures(row):
    """The stats' lead figures from the plain query's row (current, previous)."""
    rev, active, created, closed, p_rev, p_active, p_created, p_closed = row

    def rate(c, n):
        return round(100.0 * n / c, 1) if c else 0.0
    return ({"revenue": float(rev), "active_leads": int(active),
             "conversion_rate": rate(created, closed)},
            {"revenue": float(p_rev), "active_leads": int(p_active),
             "conversion_rate": rate(p_created, p_closed)})


# -- one size ----------------------------------------------------------------------------------
def measure_size(size, ctx, args):
    start, end = ctx["start"], ctx["end"]
    prev_start = start - (end - start) - dt.timedelta(days=1)
    path = "/api/dashboard/stats?startDate=%s&endDate=%s" % (start.isoformat(), end.isoformat())
    url = ctx["stack"].url + path
    status, _, body = http_get(url, ctx["key"])
    if status != 200:
        raise BenchError("pre-flight %s -> %s: %s" % (path, status, body[:300]))
    api = json.loads(body)

    captured, handler_result = capture_stats_sql(ctx["analytics_url"], start, end)
    analytics_sql, _ = time_statements(ctx["analytics_dsn"], captured, args.runs)
    handler_call = time_handler(ctx["analytics_url"], start, end, args.runs)
    plain_params = {"s": utc_midnight(start), "e": utc_midnight(end + dt.timedelta(days=1)),
                    "ps": utc_midnight(prev_start)}
    plain_sql, rows = time_statements(ctx["leads_dsn"], [(PLAIN_SQL, plain_params)], args.runs)
    current, previous = plain_figures(rows[0][0])

    warnings = []
    if api != handler_result:
        warnings.append("%d: the gateway's answer differs from handlers.stats in-process" % size)
    for key in current:
        got = api.get(key, {}).get("value")
        if got is None or abs(float(got) - current[key]) > 0.01:
            warnings.append("%d: %s: gateway %s vs plain SQL %s" % (size, key, got, current[key]))

    say("%d leads: wrk %s (%d s warm-up + %d s, -c%d)"
        % (size, path, rp.WARMUP_SECONDS, args.duration, args.connections))
    gateway = measure(ctx["wrk"], url, ctx["key"], args.duration, args.connections)
    if gateway["non_2xx"] or gateway["socket_errors"]:
        warnings.append("%d: wrk saw %d non-2xx, %d socket errors"
                        % (size, gateway["non_2xx"], gateway["socket_errors"]))
    say("%d leads: gateway %.1f req/s p99 %.2f ms; analytics SQL %.3f ms (%d statements); "
        "handlers.stats %.3f ms; plain SQL %.2f ms"
        % (size, gateway["rps"], gateway["p99_ms"] or 0, analytics_sql["median_ms"],
           len(captured), handler_call["median_ms"], plain_sql["median_ms"]))
    return {"leads": size, "path": path, "answer": api,
            "plain_figures": {"current": current, "previous": previous},
            "gateway": gateway, "analytics_sql": dict(analytics_sql, statements=len(captured)),
            "handlers_stats_call": handler_call, "plain_sql": plain_sql,
            "warnings": warnings}


# -- report ------------------------------------------------------------------------------------
def build_rows(small, large):
    def ratio(a, b):
        return b / a if a else None

    rows = []

    def add(what, a, b, aim, ok):
        r = ratio(a, b)
        rows.append({"what": what, "small": a, "large": b, "ratio": r, "aim": aim,
                     "verdict": "-" if ok is None or r is None else ("ok" if ok(r) else "MISSED")})

    g = AIM_GROWTH
    add("gateway stats req/s", small["gateway"]["rps"], large["gateway"]["rps"],
        ">= %.2fx" % (1 / g), lambda r: r >= 1 / g)
    add("gateway stats p50 ms", small["gateway"]["p50_ms"], large["gateway"]["p50_ms"],
        "<= %.1fx" % g, lambda r: r <= g)
    add("gateway stats p99 ms", small["gateway"]["p99_ms"], large["gateway"]["p99_ms"],
        "<= %.1fx" % g, lambda r: r <= g)
    add("analytics SQL median ms", small["analytics_sql"]["median_ms"],
        large["analytics_sql"]["median_ms"], "<= %.1fx" % g, lambda r: r <= g)
    add("handlers.stats call median ms", small["handlers_stats_call"]["median_ms"],
        large["handlers_stats_call"]["median_ms"], "<= %.1fx" % g, lambda r: r <= g)
    add("plain SQL aggregate median ms", small["plain_sql"]["median_ms"],
        large["plain_sql"]["median_ms"], "(grows with N)", None)
    return rows


def print_table(rows, small, large, plain_over):
    head = ("what", "%d" % small["leads"], "%d" % large["leads"], "ratio large/small", "aim",
            "verdict")
    lines = [head]
    for row in rows:
        lines.append((row["what"], rp.fmt(row["small"], "%.3f"), rp.fmt(row["large"], "%.3f"),
                      rp.fmt(row["ratio"], "%.2f"), row["aim"], row["verdict"]))
    lines.append(("plain/analytics SQL at %d" % large["leads"], "-", rp.fmt(plain_over, "%.1f"),
                  "-", ">= %.0fx" % AIM_PLAIN_OVER_ANALYTICS,
                  "ok" if plain_over and plain_over >= AIM_PLAIN_OVER_ANALYTICS else "MISSED"))
    rp.print_aligned("GET /api/dashboard/stats (%d-day range) through the gateway, and the SQL "
                     "behind it (in-process, psycopg2, no HTTP) vs a plain aggregate over `leads`"
                     % RANGE_DAYS, lines, right=(1, 2, 3))


# -- main ----------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000, help="leads, first size (10000)")
    parser.add_argument("--large", type=int, default=1_000_000, help="leads, second size (1000000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (8)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per SQL figure (50)")
    args = parser.parse_args(argv)
    if not 100 <= args.small < args.large or min(args.duration, args.connections, args.runs) < 1:
        parser.error("need 100 <= --small < --large, and --duration/--connections/--runs >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    setup = rp.bench_setup(PREFIX)
    if setup is None:
        return 1
    binary, server_url, vhost, key, env = setup
    stack_log = os.path.join(RESULTS, "dashboard_stack.log")
    open(stack_log, "w").close()
    stack = None
    last_day = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    ctx = {"key": key, "wrk": binary, "end": last_day,
           "start": last_day - dt.timedelta(days=RANGE_DAYS - 1),
           "leads_dsn": dsn(server_url, "%s_leads" % PREFIX),
           "analytics_dsn": dsn(server_url, "%s_analytics" % PREFIX),
           "analytics_url": with_database(server_url, "%s_analytics" % PREFIX)}
    try:
        drop_databases(server_url, PREFIX)
        stack = rp.start_stack(env, stack_log)
        ctx["stack"] = stack
        wait_for_table(ctx["leads_dsn"], "leads")
        wait_for_table(ctx["analytics_dsn"], "daily_leads")
        # The trigram (GIN) indexes serve the list's search only; dropped in
        # this throw-away database so 1M rows load in seconds. The btree
        # indexes (status, source, score, owner_id, created_at, email) stay.
        execute(ctx["leads_dsn"], "DROP INDEX IF EXISTS leads_name_trgm, leads_email_trgm, "
                "leads_company_trgm")
        execute(ctx["analytics_dsn"], FILL_CAMPAIGNS,
                {"campaigns": CAMPAIGNS, "first": last_day - dt.timedelta(days=HISTORY_DAYS - 1),
                 "last": last_day})

        results, loaded = [], 0
        for size in (args.small, args.large):
            say("loading leads %d..%d into both databases" % (loaded + 1, size))
            leads_s, analytics_s = fill(ctx["leads_dsn"], ctx["analytics_dsn"], loaded + 1, size,
                                        last_day)
            loaded = size
            sizes = dict(counts(ctx["leads_dsn"], ["leads"]),
                         **counts(ctx["analytics_dsn"], ["lead_facts", "daily_leads",
                                                         "daily_closed", "campaign_days"]))
            say("loaded in %.1f s (leads) + %.1f s (analytics): %s"
                % (leads_s, analytics_s, ", ".join("%s=%d" % kv for kv in sizes.items())))
            result = measure_size(size, ctx, args)
            result.update(rows=sizes, load_seconds={"leads": leads_s, "analytics": analytics_s})
            results.append(result)

        small, large = results
        rows = build_rows(small, large)
        plain_over = (large["plain_sql"]["median_ms"] / large["analytics_sql"]["median_ms"]
                      if large["analytics_sql"]["median_ms"] else None)
        print_table(rows, small, large, plain_over)
        warnings = small["warnings"] + large["warnings"]
        for w in warnings:
            print("WARNING: %s" % w)
        print("Note: the SQL rows are DB-only (in-process psycopg2, no HTTP/RPC); the gateway "
              "rows include HTTP + RPC. Compare growth with size, and SQL with SQL.")
        report = {
            "benchmark": "dashboard",
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=rp.ROOT,
                                     capture_output=True, text=True).stdout.strip() or None,
            "settings": {"sizes": [args.small, args.large], "duration_s": args.duration,
                         "warmup_s": rp.WARMUP_SECONDS, "connections": args.connections,
                         "wrk_threads": 2, "sql_runs": args.runs, "cpus": os.cpu_count(),
                         "range": [ctx["start"].isoformat(), ctx["end"].isoformat()],
                         "history_days": HISTORY_DAYS, "campaigns": CAMPAIGNS,
                         "aims": {"growth_max": AIM_GROWTH,
                                  "plain_over_analytics_min": AIM_PLAIN_OVER_ANALYTICS}},
            "table": rows,
            "plain_over_analytics_sql_large": plain_over,
            "warnings": warnings,
            "sizes": results,
        }
        out = os.path.join(RESULTS, "dashboard.json")
        with open(out, "w") as f:
            json.dump(report, f, indent=2, default=str)
        say("wrote %s" % os.path.relpath(out, rp.ROOT))
        return 0
    except (BenchError, psycopg2.Error) as exc:
        print("[bench] FAILED: %s" % exc, file=sys.stderr, flush=True)
        return 1
    finally:
        rp.clean_up((lambda: stack and stack.stop(), lambda: drop_databases(server_url, PREFIX),
                     lambda: rp.drop_vhost(vhost, PREFIX)))


if __name__ == "__main__":
    sys.exit(main())
