"""Turning Graph API rows into the campaigns service's rows (pure functions)."""
import datetime as dt
from decimal import Decimal, InvalidOperation

LEAD_ACTIONS = ("lead", "onsite_conversion.lead_grouped", "offsite_conversion.fb_pixel_lead")
REVENUE_ACTIONS = ("purchase", "omni_purchase", "offsite_conversion.fb_pixel_purchase")
OBJECTIVES = {
    "OUTCOME_SALES": "Sales", "OUTCOME_LEADS": "Leads", "OUTCOME_TRAFFIC": "Traffic",
    "OUTCOME_AWARENESS": "Awareness", "OUTCOME_ENGAGEMENT": "Engagement",
    "OUTCOME_APP_PROMOTION": "App promotion",
}


def decimal(value):
    """Graph numbers arrive as strings: exact Decimals, 0 when absent or unusable."""
    if value in (None, ""):
        return Decimal("0")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return Decimal("0")
    return result if result.is_finite() else Decimal("0")


def integer(value):
    return int(decimal(value))


def first_action(actions, types):
    """The value of the first of `types` present in `actions` (never a sum
    across types: Meta reports one conversion under several of them)."""
    by_type = {}
    for action in actions or []:
        if isinstance(action, dict) and action.get("action_type") not in by_type:
            by_type[action.get("action_type")] = action.get("value")
    for kind in types:
        if kind in by_type:
            return decimal(by_type[kind])
    return Decimal("0")


def objective_words(objective):
    if not objective:
        return None
    return OBJECTIVES.get(objective) or objective.replace("OUTCOME_", "").replace("_", " ").title()


def status_word(status):
    return (status or "unknown").lower()


def campaign_values(row):
    return {"meta_campaign_id": str(row["id"]), "name": row.get("name") or str(row["id"]),
            "status": status_word(row.get("status") or row.get("effective_status")),
            "objective": objective_words(row.get("objective"))}


def day_values(row):
    """An insights row as a day's totals: {meta_campaign_id, date, spend, ...}."""
    return {"meta_campaign_id": str(row["campaign_id"]),
            "date": dt.date.fromisoformat(str(row["date_start"])[:10]),
            "spend": decimal(row.get("spend")),
            "impressions": integer(row.get("impressions")),
            "clicks": integer(row.get("clicks")),
            "leads": int(first_action(row.get("actions"), LEAD_ACTIONS)),
            "revenue": first_action(row.get("action_values"), REVENUE_ACTIONS)}
