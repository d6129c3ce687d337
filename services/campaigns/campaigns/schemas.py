"""How the campaigns service writes its data on the wire (RPC results and events).

These dicts are the contract's JSON (camelCase); ORM objects never leave.
"""
from decimal import ROUND_HALF_UP, Decimal

from crm_common.timefmt import iso_timestamp


def campaign_to_dict(campaign):
    return {
        "id": str(campaign.id),
        "metaCampaignId": campaign.meta_campaign_id,
        "name": campaign.name,
        "status": campaign.status,
        "objective": campaign.objective,
        "lastSyncedAt": iso_timestamp(campaign.last_synced_at),
    }


def day_to_dict(day):
    return {"date": day.date.isoformat(), "spend": float(day.spend),
            "impressions": int(day.impressions), "clicks": int(day.clicks),
            "leads": int(day.leads), "revenue": float(day.revenue)}


def _ratio(numerator, divisor):
    """numerator / divisor rounded to 2 places (half up); None when divisor is 0."""
    if not divisor:
        return None
    return float((Decimal(numerator) / Decimal(divisor)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def campaign_with_metrics(campaign, sums):
    result = campaign_to_dict(campaign)
    spend, revenue = Decimal(sums["spend"] or 0), Decimal(sums["revenue"] or 0)
    leads = int(sums["leads"] or 0)
    result.update({"spend": float(spend), "impressions": int(sums["impressions"] or 0),
                   "clicks": int(sums["clicks"] or 0), "leads": leads, "revenue": float(revenue),
                   "cpl": _ratio(spend, leads), "roas": _ratio(revenue, spend)})
    return result
