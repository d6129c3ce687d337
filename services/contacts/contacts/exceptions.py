"""Errors the contacts service raises over RPC (mapped to HTTP by the gateway)."""
from crm_common.errors import NotFound, ValidationFailed


class ContactNotFound(NotFound):
    default_description = "No contact with this id."


class InvalidContact(ValidationFailed):
    pass
