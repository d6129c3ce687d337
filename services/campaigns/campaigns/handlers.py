"""What the campaigns service does: each function is one command in one
transaction (`tx`, a crm_common UnitOfWork)."""
import datetime as dt

from sqlalchemy.dialects.postgresql import insert as pg_insert

from campaigns.exceptions import CampaignNotFound, InvalidCampaignQuery
from campaigns.models import SyncState
from campaigns.repository import (DEFAULT_SORT, SORT_KEYS, CampaignReadRepository,
                                  CampaignRepository, SyncRepository)
from campaigns.schemas import campaign_to_dict, campaign_with_metrics, day_to_dict
from campaigns.sync import campaign_values, day_values
from crm_common.timefmt import iso_timestamp, utcnow


def get_campaign(tx, campaign_id):
    campaign = CampaignRepository(tx.session).get(campaign_id)
    if campaign is None:
        raise CampaignNotFound()
    return campaign_to_dict(campaign)


def is_first_sync(tx):
    """No insight day stored yet: the sync then asks for every day."""
    return not SyncRepository(tx.session).has_days()


def apply_sync(tx, graph_campaigns, graph_days):
    """Store one sync's Graph rows: campaigns upserted on Meta's id, one row
    per campaign per day upserted (so a second sync counts nothing twice), and
    a `campaign_synced` event per campaign that is new or changed, carrying
    the days that changed."""
    now = utcnow()
    repo = SyncRepository(tx.session)
    synced = repo.upsert_campaigns([campaign_values(c) for c in graph_campaigns], now)
    days = {}
    for row in graph_days:
        value = day_values(row)
        days[(value["meta_campaign_id"], value["date"])] = value   # last one wins
    # Insight rows of a campaign the list did not return (deleted, say) are
    # kept too, under a placeholder campaign.
    unknown = sorted({meta for meta, _ in days} - set(synced))
    synced.update(repo.upsert_campaigns(
        [{"meta_campaign_id": meta, "name": "Campaign %s" % meta, "status": "unknown",
          "objective": None} for meta in unknown], now, keep_existing=True))
    rows = [dict({k: v for k, v in value.items() if k != "meta_campaign_id"},
                 campaign_id=synced[value["meta_campaign_id"]][0].id, updated_at=now)
            for value in days.values()]
    changed = {}
    for day in repo.upsert_days(rows):
        changed.setdefault(day.campaign_id, []).append(day)
    repo.refresh_totals(changed)
    for campaign, was_changed in synced.values():
        if was_changed or campaign.id in changed:
            tx.emit("campaign_synced", {
                "campaign": campaign_to_dict(campaign),
                "daily": [day_to_dict(d) for d in sorted(changed.get(campaign.id, []),
                                                         key=lambda d: d.date)]})
    tx.commit()
    return {"status": "ok", "campaigns": len(synced), "days": len(rows),
            "finishedAt": iso_timestamp(utcnow())}


def _date(query, key):
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidCampaignQuery.for_field(key, "must be a date (YYYY-MM-DD)")


def list_campaigns(tx, query=None):
    """Campaigns with spend, impressions, clicks, leads, revenue summed over
    their days in start_date..end_date (all days when absent), cpl and roas.
    Query: status (a list), start_date, end_date, sort, limit, offset."""
    query = dict(query or {})
    unknown = sorted(set(query) - {"status", "start_date", "end_date", "sort", "limit", "offset"})
    if unknown:
        raise InvalidCampaignQuery.for_field(unknown[0], "unknown field")
    sort = query.get("sort") or DEFAULT_SORT
    if sort.lstrip("-") not in SORT_KEYS:
        raise InvalidCampaignQuery.for_field("sort", "unknown sort field")
    start, end = _date(query, "start_date"), _date(query, "end_date")
    if start and end and start > end:
        raise InvalidCampaignQuery.for_field("start_date", "is after end_date")
    status = query.get("status")
    if isinstance(status, str):
        status = [status]
    rows, total = CampaignReadRepository(tx.session).search(
        status=status, start=start, end=end, sort=sort, limit=int(query.get("limit") or 100),
        offset=int(query.get("offset") or 0))
    return {"items": [campaign_with_metrics(c, sums) for c, sums in rows], "total": total}


def get_campaign_detail(tx, campaign_id):
    """One campaign with its metrics over every synced day, and `daily`."""
    campaign = CampaignRepository(tx.session).get(campaign_id)
    if campaign is None:
        raise CampaignNotFound()
    repo = CampaignReadRepository(tx.session)
    result = campaign_with_metrics(campaign, repo.totals(campaign))
    result["daily"] = [day_to_dict(d) for d in repo.days(campaign.id)]
    return result


def record_sync(tx, status, error=None):
    """Note the sync's state (`running`, `ok` or `error`) for the settings."""
    values = {"id": 1, "status": status, "at": utcnow(), "error": error}
    if status == "ok":
        values["last_ok_at"] = values["at"]
    tx.session.execute(pg_insert(SyncState).values(**values).on_conflict_do_update(
        index_elements=["id"], set_={k: v for k, v in values.items() if k != "id"}))
    tx.commit()


def last_sync(tx):
    state = tx.session.get(SyncState, 1)
    if state is None:
        return None
    return {"at": iso_timestamp(state.at), "status": state.status, "error": state.error}
