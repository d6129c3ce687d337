"""What the analytics service does, as plain functions of a unit of work
(`tx`, crm_common.db.UnitOfWork) so they run the same under nameko, in
interface tests, or from a script.

Writes: `apply_lead_event` and `apply_campaign_synced`, one transaction per
event, de-duplicated on `event_id`. Reads: `stats`, `revenue_chart`,
`sources_chart`, whose cost grows with the days in the range (docs/analytics.md).
"""
import datetime as dt
import logging
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from analytics import aggregates as agg
from analytics.exceptions import InvalidQuery
from analytics.models import (CAMPAIGN_DAYS, DAILY_CLOSED, DAILY_LEADS, LEAD_FACTS,
                              PROCESSED_EVENTS)

log = logging.getLogger(__name__)

LEAD_EVENTS = ("lead_created", "lead_updated", "lead_status_changed", "lead_deleted")
MAX_CHART_DAYS = 3660


class MalformedEvent(ValueError):
    """An event that can never be applied (requeueing it would loop forever)."""


# ---- writing ------------------------------------------------------------------

def _first_time(tx, event_id):
    """Record the event; False when it was processed already (a redelivery)."""
    try:
        key = uuid.UUID(str(event_id))
    except ValueError:
        raise MalformedEvent("event_id %r is not a UUID" % (event_id,))
    inserted = tx.session.execute(
        insert(PROCESSED_EVENTS).values(event_id=key)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(PROCESSED_EVENTS.c.event_id)).first()
    return inserted is not None


def _load_fact(tx, lead_id):
    """The stored fact of a lead, locked (a placeholder row is made first, so
    two events for one lead serialize here). None for a placeholder."""
    tx.session.execute(insert(LEAD_FACTS).values(lead_id=lead_id)
                       .on_conflict_do_nothing(index_elements=["lead_id"]))
    row = tx.session.execute(sa.select(LEAD_FACTS).where(LEAD_FACTS.c.lead_id == lead_id)
                             .with_for_update()).mappings().one()
    return fact_from_row(row)


def fact_from_row(row):
    """The fact of a `lead_facts` row (a mapping); None for a placeholder."""
    if row["created_day"] is None and not row["deleted"]:
        return None
    return agg.Fact(row["created_day"], row["source"], row["status"], row["value"],
                    row["closed_day"], row["deleted"], row["version"])


def fact_values(fact):
    """The `lead_facts` columns (but lead_id) of a fact."""
    return dict(created_day=fact.created_day, source=fact.source, status=fact.status,
                value=fact.value, closed_day=fact.closed_day, deleted=fact.deleted,
                version=fact.version)


def _store_fact(tx, lead_id, fact):
    tx.session.execute(sa.update(LEAD_FACTS).where(LEAD_FACTS.c.lead_id == lead_id)
                       .values(**fact_values(fact)))


def apply_delta(tx, leads, closed):
    """Add the differences with upserts, daily_leads before daily_closed and
    keys in sorted order, so concurrent transactions lock rows in one order."""
    for (day, source), (created, now_closed) in leads.items():
        stmt = insert(DAILY_LEADS).values(day=day, source=source, created=created,
                                          created_now_closed=now_closed)
        tx.session.execute(stmt.on_conflict_do_update(
            index_elements=["day", "source"],
            set_={"created": DAILY_LEADS.c.created + stmt.excluded.created,
                  "created_now_closed": DAILY_LEADS.c.created_now_closed
                  + stmt.excluded.created_now_closed}))
    for day, (count, revenue) in closed.items():
        stmt = insert(DAILY_CLOSED).values(day=day, closed_count=count, revenue=revenue)
        tx.session.execute(stmt.on_conflict_do_update(
            index_elements=["day"],
            set_={"closed_count": DAILY_CLOSED.c.closed_count + stmt.excluded.closed_count,
                  "revenue": DAILY_CLOSED.c.revenue + stmt.excluded.revenue}))


def apply_lead_event(tx, event_type, payload):
    """Fold one leads.* event into the aggregates, then commit. Returns True
    when it changed something, False for a redelivery or a stale snapshot."""
    if event_type not in LEAD_EVENTS:
        raise MalformedEvent("unknown lead event %r" % (event_type,))
    lead = (payload or {}).get("lead") or {}
    try:
        lead_id = uuid.UUID(str(lead.get("id")))
        incoming = agg.fact_from_lead(lead, deleted=event_type == "lead_deleted")
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise MalformedEvent("unusable %s event: %s" % (event_type, exc))
    if not _first_time(tx, payload.get("event_id")):
        return False
    stored = _load_fact(tx, lead_id)
    kept = agg.decide(stored, incoming)
    changed = kept is incoming
    if changed:
        _store_fact(tx, lead_id, incoming)
        # Last: every event of a day and source adds to the same daily rows,
        # locked from here to the commit; the shorter that is, the less the
        # handlers of concurrent events wait for one another.
        apply_delta(tx, *agg.delta(stored, incoming))
    tx.commit()
    return changed


def apply_campaign_synced(tx, payload):
    """Fold a campaigns.campaign_synced event: each `daily` row carries the
    day's totals, so it replaces the stored row (idempotent by nature)."""
    payload = payload or {}
    campaign = payload.get("campaign") or {}
    campaign_id = campaign.get("metaCampaignId") or campaign.get("id")
    if not campaign_id:
        raise MalformedEvent("campaign_synced without a campaign id")
    rows = []
    try:
        for row in payload.get("daily") or []:
            rows.append({"meta_campaign_id": str(campaign_id),
                         "day": dt.date.fromisoformat(str(row["date"])[:10]),
                         "clicks": int(row.get("clicks") or 0),
                         "spend": str(row.get("spend") or 0)})
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEvent("unusable campaign_synced row: %s" % exc)
    if not _first_time(tx, payload.get("event_id")):
        return False
    for row in sorted(rows, key=lambda r: r["day"]):
        stmt = insert(CAMPAIGN_DAYS).values(**row)
        tx.session.execute(stmt.on_conflict_do_update(
            index_elements=["meta_campaign_id", "day"],
            set_={"clicks": stmt.excluded.clicks, "spend": stmt.excluded.spend}))
    tx.commit()
    return True


# ---- reading ------------------------------------------------------------------

def parse_range(start, end):
    try:
        start, end = dt.date.fromisoformat(str(start)), dt.date.fromisoformat(str(end))
    except ValueError:
        raise InvalidQuery.for_field("startDate", "startDate and endDate must be dates (YYYY-MM-DD)")
    if start > end:
        raise InvalidQuery.for_field("startDate", "must not be after endDate")
    return start, end


def _sum(tx, column, day_column, start, end):
    query = sa.select(sa.func.coalesce(sa.func.sum(column), 0))
    if start is not None:
        query = query.where(day_column >= start)
    return tx.session.execute(query.where(day_column <= end)).scalar()


def _period(tx, start, end):
    created, now_closed = tx.session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(DAILY_LEADS.c.created), 0),
                  sa.func.coalesce(sa.func.sum(DAILY_LEADS.c.created_now_closed), 0))
        .where(DAILY_LEADS.c.day.between(start, end))).one()
    existing = _sum(tx, DAILY_LEADS.c.created, DAILY_LEADS.c.day, None, end)
    closed_by_end = _sum(tx, DAILY_CLOSED.c.closed_count, DAILY_CLOSED.c.day, None, end)
    return {"revenue": float(_sum(tx, DAILY_CLOSED.c.revenue, DAILY_CLOSED.c.day, start, end)),
            "active_leads": int(existing - closed_by_end),
            "conversion_rate": agg.conversion_rate(int(created), int(now_closed)),
            "link_clicks": int(_sum(tx, CAMPAIGN_DAYS.c.clicks, CAMPAIGN_DAYS.c.day, start, end))}


def stats(tx, start, end):
    start, end = parse_range(start, end)
    current = _period(tx, start, end)
    previous = _period(tx, *agg.previous_period(start, end))
    return {key: agg.figure(current[key], previous[key]) for key in current}


def revenue_chart(tx, start, end, interval="day"):
    start, end = parse_range(start, end)
    if interval not in agg.INTERVALS:
        raise InvalidQuery.for_field("interval", "must be one of %s" % ", ".join(agg.INTERVALS))
    if (end - start).days >= MAX_CHART_DAYS:
        raise InvalidQuery.for_field("endDate", "the range may span at most %d days"
                                     % MAX_CHART_DAYS)
    rows = tx.session.execute(sa.select(DAILY_CLOSED.c.day, DAILY_CLOSED.c.revenue)
                              .where(DAILY_CLOSED.c.day.between(start, end))).all()
    return agg.revenue_points(start, end, interval, {day: revenue for day, revenue in rows})


def sources_chart(tx, start, end):
    start, end = parse_range(start, end)
    total = sa.func.sum(DAILY_LEADS.c.created)
    rows = tx.session.execute(
        sa.select(DAILY_LEADS.c.source, total.label("total"))
        .where(DAILY_LEADS.c.day.between(start, end))
        .group_by(DAILY_LEADS.c.source).having(total > 0)
        .order_by(total.desc(), DAILY_LEADS.c.source)).all()
    return [{"name": source, "value": int(count)} for source, count in rows]
