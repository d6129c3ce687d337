"""Queries on the campaigns table (the only place that builds them)."""
import sqlalchemy as sa

from campaigns.models import Campaign
from crm_common.ids import parse_id


class CampaignRepository:
    def __init__(self, session):
        self.session = session

    def get(self, campaign_id):
        key = parse_id(campaign_id)
        if key is None:
            return None
        return self.session.execute(sa.select(Campaign).where(Campaign.id == key)).scalar_one_or_none()
