"""Errors the leads service raises over RPC (mapped to HTTP by the gateway)."""
from crm_common.errors import Conflict, NotFound, ValidationFailed


class LeadNotFound(NotFound):
    default_description = "No lead with this id."


class DuplicateEmail(Conflict):
    """Details carry `existingId`, the lead that already has the email."""
    default_description = "A lead with this email already exists."


class InvalidLead(ValidationFailed):
    pass
