"""The campaigns service. A skeleton so far: it owns its database and answers
the health ping; its features come with their own issue."""
from nameko.rpc import rpc

from crm_common.errors import Unavailable
from campaigns.dependencies import CampaignsDatabase


class CampaignsService:
    name = "campaigns"

    db = CampaignsDatabase()

    @rpc(expected_exceptions=Unavailable)
    def ping(self):
        self.db.ping()
        return {"status": "ok"}
