"""Errors the campaigns service raises over RPC (mapped to HTTP by the gateway)."""
from crm_common.errors import Conflict, DomainError, NotFound, ValidationFailed


class CampaignNotFound(NotFound):
    default_description = "No campaign with this id."


class GraphRefused(DomainError):
    """Meta refused the sync (a bad token, code 190, or another permanent
    error), or stayed unavailable through every retry. Carries Meta's message
    and `code`; the gateway answers 502."""
    default_description = "The Graph API refused the request."


class SyncRunning(Conflict):
    default_description = "a sync is running"


class InvalidCampaignQuery(ValidationFailed):
    default_description = "The campaign query is not valid."
