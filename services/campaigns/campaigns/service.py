"""The campaigns service: RPC entrypoints that translate to handlers. So far
it answers lookups (the tasks service checks campaign ids with them); the Meta
sync that fills the table comes with its own issue."""
from nameko.rpc import rpc

from campaigns import handlers
from campaigns.dependencies import CampaignsDatabase
from campaigns.exceptions import CampaignNotFound
from crm_common.errors import Unavailable

EXPECTED = (CampaignNotFound, Unavailable)


class CampaignsService:
    name = "campaigns"

    db = CampaignsDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}

    @rpc(expected_exceptions=EXPECTED)
    def get_campaign(self, campaign_id):
        with self.db.transaction() as tx:
            return handlers.get_campaign(tx, campaign_id)
