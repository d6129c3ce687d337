#!/usr/bin/env python3
"""Index benchmark: does every list filter, search and sort of the contract
read an index at 1,000,000 rows? Checked with EXPLAIN ANALYZE on the SQL the
services' own code sends, against a forced sequential scan in the same run.

For each service with list endpoints (leads, contacts, tasks, campaigns): a
fresh database `crm_benchidx_<service>` migrated to head with the service's
own alembic scripts (crm_common.migrations.prepare, as the service does at
start), its main table filled with N rows in SQL (INSERT ... SELECT
generate_series; the indexes are dropped for the load and recreated from
their own definitions), VACUUM ANALYZE. Then for each case (a list query as
the gateway passes it to the service) the service's list handler is called
once with a SQLAlchemy `before_cursor_execute` hook catching the statements
it sends (the page and the COUNT behind X-Total-Count), and each statement
runs `--runs` times under EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON), as planned
(ours) and with index and bitmap scans off (the baseline: a sequential scan).

    .venv/bin/python bench/indexes.py [--rows 1000000] [--runs 3] [--service leads ...]

Prints a table (what, baseline ms, ours ms, ratio, aim, verdict, indexes) and
writes bench/results/indexes.json (every plan). Exit status: 0 when it
measured (a sequential scan is reported, not failed); 1 when a database could
not be made or filled. Its databases are dropped on the way out (also on
error, Ctrl-C or SIGTERM).
"""
import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import read_path as rp  # noqa: E402  (also puts libs/ on sys.path)
from read_path import BenchError, fmt, say  # noqa: E402

SERVICES = ("leads", "contacts", "tasks", "campaigns")
for _name in SERVICES:
    sys.path.insert(0, os.path.join(rp.ROOT, "services", _name))

import psycopg2  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from crm_common.config import Settings  # noqa: E402
from crm_common.migrations import prepare  # noqa: E402
from crm_common.testing import drop_databases  # noqa: E402

PREFIX = "crm_benchidx"
RESULTS = rp.RESULTS
PAGE = 50                    # the page size the read-path benchmark uses
HISTORY_DAYS = 730           # rows are spread over two years ending now
# Only every 100th row's company contains it (and no other text does), so a
# search for it matches 1% of the rows.
SEARCH_TERM = "zephyr"
AIM = "index used"
# The baseline: the same statement with every index path off, i.e. a
# sequential scan (index-only scans too, or a count would still read an index).
FORCE_SEQ = ("SET enable_indexscan = off", "SET enable_bitmapscan = off",
             "SET enable_indexonlyscan = off")
FORCE_INDEX = ("SET enable_seqscan = off",)
# An index plan this much slower than the sequential scan (and by more than
# SLOWER_MS) is flagged: the planner misjudged, the index does not serve it.
SLOWER_RATIO = 1.2
SLOWER_MS = 2.0
RESET = ("RESET enable_indexscan", "RESET enable_bitmapscan", "RESET enable_indexonlyscan",
         "RESET enable_seqscan")

# -- data: row i is a pure function of i (hashint4), so any N has the same spread ----------


def rnd(salt):
    """A non-negative pseudo-random int per row i (SQL)."""
    return "(hashint4(i * 32 + %d) & 2147483647)" % salt


def pick(values, expr):
    """One of `values`, chosen by `expr` (SQL)."""
    quoted = ", ".join("'%s'" % v for v in values)
    return "(ARRAY[%s])[1 + mod(%s, %d)]" % (quoted, expr, len(values))


def weighted(choices, expr):
    """CASE over mod(expr, 100) giving each value its share (percent)."""
    parts, edge = [], 0
    for value, share in choices:
        edge += share
        parts.append("WHEN mod(%s, 100) < %d THEN '%s'" % (expr, edge, value))
    return "CASE %s END" % " ".join(parts)


FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
         "Kira", "Liam", "Maya", "Noor", "Oscar", "Priya", "Quinn", "Rosa", "Sven", "Tara",
         "Umar", "Vera", "Wen", "Xavi", "Yara", "Zoe", "Aiko", "Bruno", "Carla", "Diego",
         "Emma", "Felix", "Gita", "Hana", "Ivan", "Julia", "Karl", "Lena", "Mateo", "Nina")
LAST = ("Almeida", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad", "Ito",
        "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Silva",
        "Tanaka", "Ulrich", "Varga", "Weber", "Xu", "Yilmaz", "Zhang", "Andersen", "Bauer",
        "Castro", "Novak", "Dias", "Eriksen", "Ferrari", "Gomez", "Horvat", "Ivanova", "Jovanovic",
        "Kim", "Lund", "Meyer", "Nowak")
COMPANY_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay",
                 "Soylent", "Tyrell", "Cyberdyne", "Wonka", "Gringotts", "Oscorp", "Monarch",
                 "Nakatomi", "Virtucon", "Massive", "Dunder", "Prestige", "Bluth", "Sterling",
                 "Pied", "Aperture", "Black Mesa", "Gekko", "Krusty", "Duff", "Lacuna", "Nuka",
                 "Octan", "Paper Street", "Rekall", "Sirius", "Tessier", "Ultor", "Veidt",
                 "Weyland", "Yoyodyne", "Zorg", "Abstergo", "Bizco", "Cogswell", "Daedalus",
                 "Ecorp", "Fringe", "Genco", "Hanso", "Ingen", "Jupiter")
COMPANY_SUFFIXES = ("Corp", "Labs", "Ltd", "Group", "Systems", "Co", "Partners", "Holdings")
COMPANY_NUMBERS = 250
SEARCH_COMPANY = "Zephyr Analytics"
# A company filter's typical answer (one of ~100,000 companies: a handful of
# rows), and one that matches nothing (a typo).
SOME_COMPANY = "Acme Labs 7"
NO_COMPANY = "Acme Labs %d" % (COMPANY_NUMBERS + 1)
TITLES = ("CEO", "CTO", "Head of Sales", "Marketing Manager", "Engineer", "Buyer", "Founder",
          "Operations Lead")


def company():
    """~100,000 companies ("Acme Labs 7"), 10% none, and the search term's
    company (one big account) on every 100th row."""
    return ("CASE WHEN mod(i, 100) = 0 THEN '%s' WHEN mod(%s, 10) = 0 THEN NULL "
            "ELSE %s || ' ' || %s || ' ' || (1 + mod(%s, %d)) END"
            % (SEARCH_COMPANY, rnd(17), pick(COMPANY_WORDS, rnd(18)),
               pick(COMPANY_SUFFIXES, rnd(19)), rnd(20), COMPANY_NUMBERS))


def later(start, days, r):
    """A moment after `start`, up to `days` later but never after now (SQL)."""
    return ("%s + make_interval(secs => mod(%s, greatest(1, least(%d, "
            "extract(epoch FROM %%(now)s::timestamptz - %s)::int))))"
            % (start, r, days * 86400, start))


# created_at grows with i (rows arrive in time order, as they do in production),
# N rows over HISTORY_DAYS ending at %(now)s, with a minute of jitter.
CREATED = ("%%(now)s::timestamptz - make_interval(secs => (%%(n)s - i) * (%d * 86400.0 / %%(n)s)"
           " + mod(%s, 60))" % (HISTORY_DAYS, rnd(0)))
# The owners a real team has: 20 of them, a fifth of the rows unassigned.
OWNER = ("CASE WHEN mod(%s, 10) < 2 THEN NULL ELSE 'user-' || (1 + mod(%s / 10, 20)) END"
         % (rnd(9), rnd(9)))
OWNER_FILTER = "user-7"
PHONE = ("CASE WHEN mod(%s, 10) < 7 THEN '+1 555 ' || lpad(mod(%s, 10000000)::text, 7, '0') END"
         % (rnd(3), rnd(3)))
LEAD_STATUSES = (("new", 30), ("contacted", 25), ("qualified", 20), ("proposal", 15),
                 ("closed", 10))
LEAD_SOURCES = (("Website", 30), ("Facebook Ad", 25), ("Referral", 15), ("Manual", 15),
                ("Trade Show", 10), ("Cold Call", 5))

FILL_LEADS = """
INSERT INTO leads (id, name, email, phone, company, job_title, status, source, score, value,
                   owner_id, created_at, updated_at, last_interaction_at, closed_at)
SELECT id, first || ' ' || last, lower(first || '.' || last || '.' || i) || '@example.com',
       phone, company, job_title, status, source, score, value, owner_id, created_at,
       updated_at, last_interaction_at, CASE WHEN status = 'closed' THEN updated_at END
FROM (
  SELECT i, md5('benchidx-lead-' || i)::uuid AS id, {first} AS first, {last} AS last,
         {phone} AS phone,
         {company} AS company,
         CASE WHEN mod({r_title}, 5) = 0 THEN NULL ELSE {title} END AS job_title,
         {status} AS status, {source} AS source, mod({r_score}, 101) AS score,
         CASE WHEN mod({r_value}, 5) = 0 THEN 0 ELSE (mod({r_value}, 5000000)) / 100.0 END AS value,
         {owner} AS owner_id, c AS created_at, {updated} AS updated_at,
         CASE WHEN mod({r_touch}, 10) < 6 THEN {touched} END AS last_interaction_at
  FROM (SELECT i, {created} AS c FROM generate_series(1, %(n)s) AS i) AS g
) AS l
""".format(first=pick(FIRST, rnd(1)), last=pick(LAST, rnd(2)), phone=PHONE,
           company=company(), r_title=rnd(5), title=pick(TITLES, "(%s / 5)" % rnd(5)),
           status=weighted(LEAD_STATUSES, rnd(6)), source=weighted(LEAD_SOURCES, rnd(7)),
           r_score=rnd(8), r_value=rnd(10), owner=OWNER, updated=later("c", 60, rnd(11)),
           r_touch=rnd(12), touched=later("c", 90, rnd(12)), created=CREATED)

FILL_CONTACTS = """
INSERT INTO contacts (id, name, email, role, company, phone, notes, lead_id, last_contacted,
                      created_at, updated_at)
SELECT md5('benchidx-contact-' || i)::uuid, first || ' ' || last,
       lower(first || '.' || last || '.' || i) || '@example.com',
       CASE WHEN mod({r_role}, 10) < 3 THEN NULL ELSE {role} END,
       {company}, {phone}, 'Met at ' || {event} || '; prefers email.',
       CASE WHEN mod({r_lead}, 10) = 0 THEN md5('benchidx-lead-' || i)::uuid END,
       CASE WHEN mod({r_touch}, 10) < 5 THEN {touched} END,
       c, {updated}
FROM (SELECT i, {first} AS first, {last} AS last, {created} AS c
      FROM generate_series(1, %(n)s) AS i) AS g
""".format(r_role=rnd(5), role=pick(TITLES, "(%s / 10)" % rnd(5)), company=company(),
           phone=PHONE, event=pick(("a show", "a webinar", "a dinner", "the office"), rnd(13)),
           r_lead=rnd(14), r_touch=rnd(12), touched=later("c", 120, rnd(12)),
           updated=later("c", 60, rnd(11)), first=pick(FIRST, rnd(1)),
           last=pick(LAST, rnd(2)), created=CREATED)

# Tasks: 60% due on a date, 25% at a time, 15% undated; due up to 45 days after
# creation; most past ones done (what is left open and past due is overdue).
FILL_TASKS = """
INSERT INTO tasks (id, title, description, due_date, due_at, priority, completed, completed_at,
                   related_to_type, related_to_id, created_at, updated_at)
SELECT id, verb || ' ' || first || ' ' || last, '',
       CASE WHEN kind < 12 THEN (due AT TIME ZONE 'UTC')::date END,
       CASE WHEN kind >= 12 AND kind < 17 THEN due END,
       priority, done,
       CASE WHEN done THEN c + make_interval(secs => mod({r_done_at}, greatest(1, extract(epoch FROM
         least(%(now)s::timestamptz, coalesce(due, c + interval '30 days')) - c)::int))) END,
       related_type,
       CASE related_type WHEN 'lead' THEN md5('benchidx-lead-' || mod(r_rel, %(n)s / 5 + 1))::uuid
                         WHEN 'campaign' THEN md5('benchidx-campaign-' || mod(r_rel, 500))::uuid
       END,
       c, {updated}
FROM (
  SELECT *, CASE WHEN kind >= 17 THEN mod({r_done}, 100) < 70
                 WHEN due < %(now)s::timestamptz THEN mod({r_done}, 100) < 85
                 ELSE mod({r_done}, 100) < 10 END AS done
  FROM (
    SELECT i, md5('benchidx-task-' || i)::uuid AS id, {verb} AS verb, {first} AS first,
           {last} AS last, mod({r_kind}, 20) AS kind, c,
           CASE WHEN mod({r_kind}, 20) < 17
                THEN c + make_interval(secs => mod({r_due}, 45 * 86400)) END AS due,
           {priority} AS priority, {related} AS related_type, {r_rel} AS r_rel
    FROM (SELECT i, {created} AS c FROM generate_series(1, %(n)s) AS i) AS g
  ) AS t
) AS t
""".format(r_done=rnd(15), r_done_at=rnd(21), updated=later("c", 1, rnd(11)),
           verb=pick(("Call", "Email", "Meet", "Follow up with", "Send a quote to"), rnd(13)),
           first=pick(FIRST, rnd(1)), last=pick(LAST, rnd(2)), r_kind=rnd(16), r_due=rnd(11),
           priority=weighted((("low", 30), ("medium", 50), ("high", 20)), rnd(6)),
           related=weighted((("lead", 60), ("campaign", 10), ("general", 30)), rnd(7)),
           r_rel=rnd(14), created=CREATED)

# Campaigns: N daily rows (campaign_days, what the list sums) for N / 730
# campaigns over the last 730 days, written day after day as the sync does.
FILL_CAMPAIGNS = """
INSERT INTO campaigns (id, meta_campaign_id, name, status, objective, last_synced_at, created_at,
                       updated_at)
SELECT md5('benchidx-campaign-' || i)::uuid, '1200' || lpad(i::text, 8, '0'),
       {word} || ' ' || {season} || ' ' || i, {status},
       CASE WHEN mod({r_obj}, 10) = 0 THEN NULL ELSE {objective} END,
       %(now)s::timestamptz - make_interval(secs => mod({r_sync}, 900)),
       %(now)s::timestamptz - interval '{days} days', %(now)s::timestamptz
FROM generate_series(1, %(campaigns)s) AS i;
INSERT INTO campaign_days (campaign_id, date, spend, impressions, clicks, leads, revenue,
                           updated_at)
SELECT md5('benchidx-campaign-' || i)::uuid, %(today)s::date - {days} + 1 + d,
       (mod({r_spend}, 50000)) / 100.0, mod({r_imp}, 20000), mod({r_imp}, 700), mod({r_imp}, 30),
       (mod({r_rev}, 200000)) / 100.0, %(now)s::timestamptz
FROM generate_series(0, {days} - 1) AS d, generate_series(1, %(campaigns)s) AS i
""".format(word=pick(COMPANY_WORDS, rnd(1)), season=pick(("Summer Sale", "Launch", "Retargeting",
                                                           "Lookalike", "Webinar", "Black Friday"),
                                                          rnd(2)),
           status=weighted((("active", 40), ("paused", 35), ("archived", 20), ("deleted", 5)),
                           rnd(6)),
           r_obj=rnd(5), objective=pick(("Sales", "Leads", "Traffic", "Awareness", "Engagement"),
                                        "(%s / 10)" % rnd(5)),
           r_sync=rnd(3), days=HISTORY_DAYS,
           r_spend="(hashint4(i * 1000 + d) & 2147483647)",
           r_imp="(hashint4(i * 1000 + d + 7) & 2147483647)",
           r_rev="(hashint4(i * 1000 + d + 13) & 2147483647)")


# -- the cases: list queries as the gateway passes them to each service ---------------------
def sorts(*names):
    return [s for name in names for s in (name, "-" + name)]


def leads_cases(ctx):
    yield {}
    for sort in sorts("created_at", "updated_at", "name", "email", "company", "status", "source",
                      "score", "value", "last_interaction_at"):
        if sort != "-created_at":
            yield {"sort": sort}
    yield {"status": ["qualified"]}
    yield {"status": ["closed"]}
    yield {"status": ["new", "contacted"]}
    yield {"search": SEARCH_TERM}
    yield {"search": ctx["email"]}       # one lead's whole email: finds one row
    yield {"source": "Referral"}
    yield {"owner_id": OWNER_FILTER}
    yield {"min_score": 90}
    yield {"min_score": 50}
    yield {"status": ["qualified"], "owner_id": OWNER_FILTER}
    yield {"status": ["new"], "source": "Website"}
    yield {"status": ["qualified"], "search": SEARCH_TERM}
    yield {"min_score": 80, "sort": "-score"}
    yield {"status": ["proposal"], "sort": "-value"}
    yield {"owner_id": OWNER_FILTER, "sort": "-updated_at"}
    yield {"search": SEARCH_TERM, "sort": "name"}
    yield {"offset": 10_000}
    yield {"status": ["qualified"], "offset": 2_000}


def contacts_cases(ctx):
    yield {}
    for sort in sorts("created_at", "updated_at", "name", "email", "company", "role",
                      "last_contacted"):
        if sort != "-created_at":
            yield {"sort": sort}
    yield {"search": SEARCH_TERM}
    yield {"search": ctx["email"]}
    yield {"company": SEARCH_COMPANY.lower()}       # one big account: 1% of the rows
    yield {"company": SOME_COMPANY}
    yield {"company": NO_COMPANY}
    yield {"company": SEARCH_COMPANY, "sort": "name"}
    yield {"company": SOME_COMPANY, "sort": "-last_contacted"}
    yield {"search": SEARCH_TERM, "sort": "-last_contacted"}
    yield {"offset": 10_000}


def tasks_cases(ctx):
    yield {}
    for sort in sorts("due_date", "created_at", "updated_at", "title", "priority", "completed_at"):
        if sort != "due_date":
            yield {"sort": sort}
    yield {"completed": False}
    yield {"completed": True}
    yield {"priority": "high"}
    yield {"related_to_type": "lead"}
    yield {"related_to_type": "campaign"}
    yield {"related_to_id": ctx["find_related"]}
    yield {"overdue": True}
    yield {"overdue": False}
    yield {"completed": False, "priority": "high"}
    yield {"completed": False, "sort": "-priority"}
    yield {"completed": True, "sort": "-completed_at"}
    yield {"overdue": True, "priority": "high"}
    yield {"offset": 10_000}


def campaigns_cases(ctx):
    last_30 = {"start_date": (ctx["today"] - dt.timedelta(days=29)).isoformat(),
               "end_date": ctx["today"].isoformat()}
    yield {}
    for sort in sorts("spend", "impressions", "clicks", "leads", "revenue", "name", "status",
                      "objective", "last_synced_at"):
        if sort != "-spend":
            yield {"sort": sort}
    yield {"status": ["active"]}
    yield {"status": ["active", "paused"]}
    yield dict(last_30)
    yield {"start_date": (ctx["today"] - dt.timedelta(days=89)).isoformat(),
           "end_date": ctx["today"].isoformat()}
    yield dict(last_30, status=["active"])
    yield dict(last_30, sort="name")


def gateway_query(service, case):
    """The dict the gateway sends for `case` (its defaults filled in)."""
    if service == "leads":
        query = {"status": None, "search": None, "source": None, "owner_id": None,
                 "min_score": None, "sort": "-created_at"}
    elif service == "contacts":
        query = {"search": None, "company": None, "sort": "-created_at"}
    elif service == "tasks":
        query = {"completed": None, "overdue": None, "priority": None, "related_to_type": None,
                 "related_to_id": None, "sort": "due_date"}
    else:
        query = {"sort": "-spend"}      # campaigns: only what was given
    query.update(limit=PAGE, offset=0)
    query.update(case)
    return query


def label(case):
    if not case:
        return "(defaults)"
    parts = []
    for key, value in case.items():
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        parts.append("%s=%s" % (key, value))
    return "&".join(parts)


def refresh_campaign_totals(url):
    """What the sync keeps on each campaign: its days' totals, summed by the
    service's own SyncRepository.refresh_totals."""
    from sqlalchemy.orm import Session

    from campaigns.repository import SyncRepository

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with Session(engine) as session, session.begin():
            SyncRepository(session).refresh_totals()
    finally:
        engine.dispose()


SPECS = {
    "leads": {"fill": FILL_LEADS, "tables": ("leads",), "big": ("leads",),
              "handler": ("leads.handlers", "list_leads"), "cases": leads_cases},
    "contacts": {"fill": FILL_CONTACTS, "tables": ("contacts",), "big": ("contacts",),
                 "handler": ("contacts.handlers", "list_contacts"), "cases": contacts_cases},
    "tasks": {"fill": FILL_TASKS, "tables": ("tasks",), "big": ("tasks",),
              "handler": ("tasks.handlers", "list_tasks"), "cases": tasks_cases},
    "campaigns": {"fill": FILL_CAMPAIGNS, "then": refresh_campaign_totals,
                  "tables": ("campaigns", "campaign_days"),
                  "big": ("campaign_days",),
                  "handler": ("campaigns.handlers", "list_campaigns"), "cases": campaigns_cases},
}


# -- databases -------------------------------------------------------------------------------
def libpq(url):
    return url.replace("postgresql+psycopg2://", "postgresql://")


def secondary_indexes(cur, table):
    """(name, definition) of `table`'s indexes that back no constraint."""
    cur.execute("""SELECT indexname, indexdef FROM pg_indexes
                   WHERE schemaname = 'public' AND tablename = %s
                     AND indexname NOT IN (SELECT conname FROM pg_constraint
                                           WHERE conrelid = %s::regclass)
                   ORDER BY indexname""", (table, table))
    return cur.fetchall()


def fill(dsn, spec, rows, now):
    """Fill the service's tables: its secondary indexes dropped for the load
    and recreated from their own definitions, then VACUUM ANALYZE. Returns
    {table: rows} and the seconds it took."""
    started = time.time()
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET maintenance_work_mem = '512MB'")
            indexes = []
            for table in spec["tables"]:
                for name, definition in secondary_indexes(cur, table):
                    indexes.append(definition)
                    cur.execute('DROP INDEX "%s"' % name)
            campaigns = max(1, rows // HISTORY_DAYS)
            cur.execute("BEGIN")
            cur.execute(spec["fill"], {"n": rows, "now": now, "today": now.date(),
                                       "campaigns": campaigns})
            cur.execute("COMMIT")
            for definition in indexes:
                cur.execute(definition)
            counts = {}
            for table in spec["tables"]:
                cur.execute("VACUUM ANALYZE %s" % table)
                cur.execute("SELECT count(*) FROM %s" % table)
                counts[table] = cur.fetchone()[0]
    finally:
        conn.close()
    return counts, time.time() - started


# -- the statements the code sends, and their plans ------------------------------------------
class Tx:
    """What a list handler uses of the unit of work: its session."""
    session = None


def capture(engine, handler, query):
    """Call the list handler once; the statements it sent, with parameters."""
    captured = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    tx = Tx()
    tx.session = sessionmaker(bind=engine)()
    try:
        handler(tx, dict(query))
    finally:
        tx.session.rollback()
        tx.session.close()
        sa.event.remove(engine, "before_cursor_execute", on_execute)
    return captured


def walk(node):
    yield node
    for child in node.get("Plans", ()):
        yield from walk(child)


def summary(plan, big):
    """The indexes a plan reads, the tables it scans sequentially, its verdict."""
    nodes = list(walk(plan["Plan"]))
    indexes, seq, kept = [], [], {}
    for node in nodes:
        name = node.get("Index Name")
        if name and name not in indexes:
            indexes.append(name)
        if node["Node Type"] == "Seq Scan":
            table, loops = node["Relation Name"], node.get("Actual Loops") or 1
            if table not in seq:
                seq.append(table)
            # rows the scan kept / read (per-loop figures times the loops)
            was = kept.get(table, (0, 0))
            rows = (node.get("Actual Rows") or 0) * loops
            kept[table] = (was[0] + rows,
                           was[1] + rows + (node.get("Rows Removed by Filter") or 0) * loops)
    big_seq = [t for t in seq if t in big]
    return {"indexes": indexes, "seq_scans": seq, "seq_kept": kept,
            "verdict": "SEQ SCAN" if big_seq or not indexes else "uses index",
            "top_node": nodes[0]["Node Type"], "rows": nodes[0].get("Actual Rows")}


def explain(conn, sql, params, runs, settings=()):
    """Median execution time (ms) over `runs` EXPLAIN ANALYZE runs, and the last plan."""
    times, plan = [], None
    with conn.cursor() as cur:
        for setting in settings:
            cur.execute(setting)
        try:
            for _ in range(runs):
                cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
                plan = cur.fetchone()[0][0]
                times.append(plan["Execution Time"])
        finally:
            for setting in RESET:
                cur.execute(setting)
    return statistics.median(times), plan


def params_key(params):
    return json.dumps(params, sort_keys=True, default=str)


def measure_service(service, server_url, args, now):
    spec = SPECS[service]
    settings = Settings(database_url=server_url, db_prefix=PREFIX)
    say("%s: %s migrated to head" % (service, settings.database_name(service)))
    url = prepare(settings, service, os.path.join(rp.ROOT, "services", service, "alembic"))
    dsn = libpq(url)
    counts, load_s = fill(dsn, spec, args.rows, now)
    if spec.get("then"):
        spec["then"](url)
    say("%s: filled in %.1f s: %s" % (service, load_s,
                                       ", ".join("%s=%d" % kv for kv in counts.items())))
    module, function = spec["handler"]
    handler = getattr(__import__(module, fromlist=[function]), function)
    ctx = {"today": now.date()}
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    cases, seen = [], set()
    try:
        if service == "tasks":
            with conn.cursor() as cur:
                cur.execute("SELECT related_to_id FROM tasks WHERE related_to_type = 'lead' "
                            "ORDER BY id LIMIT 1")
                ctx["find_related"] = str(cur.fetchone()[0])
        if service in ("leads", "contacts"):
            with conn.cursor() as cur:     # the exact-email search: one real row's email
                cur.execute("SELECT email FROM %s WHERE id = md5(%%s)::uuid" % service,
                            ("benchidx-%s-%d" % (service[:-1], args.rows // 2 + 1),))
                ctx["email"] = cur.fetchone()[0]
        for case in spec["cases"](ctx):
            query = gateway_query(service, case)
            statements = capture(engine, handler, query)
            for sql, params in statements:
                kind = "count" if sql.lstrip().lower().startswith("select count(") else "page"
                key = (sql, params_key(params))
                if key in seen:
                    continue
                seen.add(key)
                what = "%s %s%s" % (service, "count " if kind == "count" else "",
                                    label({k: v for k, v in case.items()
                                           if kind == "page" or k not in ("sort", "offset")}))
                ours_ms, ours_plan = explain(conn, sql, params, args.runs)
                base_ms, base_plan = explain(conn, sql, params, args.runs, FORCE_SEQ)
                ours = summary(ours_plan, spec["big"])
                if (ours["verdict"] == "uses index" and ours_ms > base_ms * SLOWER_RATIO
                        and ours_ms - base_ms > SLOWER_MS):
                    ours["verdict"] = "SLOWER than seq"
                row = {"service": service, "what": what, "kind": kind, "query": query,
                       "sql": sql, "params": params, "ours_ms": ours_ms, "baseline_ms": base_ms,
                       "ratio": ours_ms / base_ms if base_ms else None, "aim": AIM,
                       "verdict": ours["verdict"], "indexes": ours["indexes"],
                       "seq_scans": ours["seq_scans"], "seq_kept": ours["seq_kept"],
                       "rows_returned": ours["rows"],
                       "plan": ours_plan, "baseline_plan": base_plan,
                       "baseline": summary(base_plan, spec["big"])}
                if ours["verdict"] == "SEQ SCAN":
                    # How the best index plan does, so a seq scan can be judged.
                    forced_ms, forced_plan = explain(conn, sql, params, args.runs, FORCE_INDEX)
                    row["index_forced_ms"] = forced_ms
                    row["index_forced"] = summary(forced_plan, spec["big"])
                    row["index_forced_plan"] = forced_plan
                cases.append(row)
                say("%-70s ours %9.2f ms  seq %9.2f ms  %s %s"
                    % (what[:70], ours_ms, base_ms, ours["verdict"],
                       ",".join(ours["indexes"]) or "-"))
    finally:
        engine.dispose()
        conn.close()
    return {"service": service, "rows": counts, "load_seconds": load_s, "cases": cases}


# -- report ----------------------------------------------------------------------------------
def print_table(results, rows):
    head = ("what", "baseline ms", "ours ms", "ratio", "aim", "verdict", "index(es) used")
    lines = [head]
    for result in results:
        for row in result["cases"]:
            lines.append((row["what"], fmt(row["baseline_ms"], "%.2f"), fmt(row["ours_ms"], "%.2f"),
                          fmt(row["ratio"], "%.3f"), row["aim"], row["verdict"],
                          ", ".join(row["indexes"]) or "-"))
    rp.print_aligned("List queries at %d rows: EXPLAIN ANALYZE of the services' own SQL (page of "
                     "%d, and the X-Total-Count COUNT), as planned vs a forced sequential scan "
                     "(baseline)" % (rows, PAGE), lines, right=(1, 2, 3))
    notes = [row for result in results for row in result["cases"] if row["verdict"] != "uses index"]
    if notes:
        print("\nNot on an index (seq scan: the tables read sequentially, and the best plan with "
              "seq scans off; slower: an index plan slower than the seq scan):")
    for row in notes:
        forced = row.get("index_forced") or {}
        if row["verdict"] == "SEQ SCAN":
            scans = ["%s (keeps %d of %d rows, %.0f%%)" % (t, k, n, 100.0 * k / n if n else 0)
                     for t, (k, n) in row["seq_kept"].items()]
            print("  %s: seq scan of %s; with seq scans off: %s ms (%s)"
                  % (row["what"], ", ".join(scans), fmt(row.get("index_forced_ms"), "%.2f"),
                     ", ".join(forced.get("indexes") or []) or "no index to use"))
        else:
            print("  %s: %s, %s ms against %s ms"
                  % (row["what"], ", ".join(row["indexes"]), fmt(row["ours_ms"], "%.2f"),
                     fmt(row["baseline_ms"], "%.2f")))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="rows in each service's main table (1000000)")
    parser.add_argument("--runs", type=int, default=3,
                        help="EXPLAIN ANALYZE runs per statement and side; the median (3)")
    parser.add_argument("--service", action="append", choices=SERVICES,
                        help="only this service (repeatable; default: all four)")
    args = parser.parse_args(argv)
    if args.rows < HISTORY_DAYS or args.runs < 1:
        parser.error("need --rows >= %d and --runs >= 1" % HISTORY_DAYS)
    return args


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(RESULTS, exist_ok=True)
    server_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    started = time.time()
    results = []
    try:
        drop_databases(server_url, PREFIX)
        for service in args.service or SERVICES:
            results.append(measure_service(service, server_url, args, now))
            drop_databases(server_url, PREFIX)
        print_table(results, args.rows)
        rows = [dict((k, v) for k, v in row.items() if k not in ("plan", "baseline_plan",
                                                                 "index_forced_plan"))
                for result in results for row in result["cases"]]
        report = {
            "benchmark": "indexes",
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=rp.ROOT,
                                     capture_output=True, text=True).stdout.strip() or None,
            "settings": {"rows": args.rows, "runs": args.runs, "page": PAGE,
                         "history_days": HISTORY_DAYS, "search_term": SEARCH_TERM,
                         "baseline": list(FORCE_SEQ), "aim": AIM, "cpus": os.cpu_count()},
            "seconds": time.time() - started,
            "table": rows,
            "services": results,
        }
        out = os.path.join(RESULTS, "indexes.json")
        with open(out, "w") as f:
            json.dump(report, f, indent=1, default=str)
        say("wrote %s (%.0f s)" % (os.path.relpath(out, rp.ROOT), time.time() - started))
        return 0
    except (BenchError, psycopg2.Error, sa.exc.SQLAlchemyError) as exc:
        print("[bench] FAILED: %s" % exc, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        try:
            drop_databases(server_url, PREFIX)
        except Exception as exc:
            print("[bench] cleanup: %r" % exc, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
