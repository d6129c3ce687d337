"""What the campaigns service does: each function is one command in one
transaction (`tx`, a crm_common UnitOfWork)."""
from campaigns.exceptions import CampaignNotFound
from campaigns.repository import CampaignRepository
from campaigns.schemas import campaign_to_dict


def get_campaign(tx, campaign_id):
    campaign = CampaignRepository(tx.session).get(campaign_id)
    if campaign is None:
        raise CampaignNotFound()
    return campaign_to_dict(campaign)
