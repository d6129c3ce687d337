"""How the campaigns service writes its data on the wire (RPC results and events).

These dicts are the contract's JSON (camelCase); ORM objects never leave.
"""
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
