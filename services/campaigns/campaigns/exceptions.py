"""Errors the campaigns service raises over RPC (mapped to HTTP by the gateway)."""
from crm_common.errors import NotFound


class CampaignNotFound(NotFound):
    default_description = "No campaign with this id."
