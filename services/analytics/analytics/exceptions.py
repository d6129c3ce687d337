"""Errors the analytics service raises over RPC."""
from crm_common.errors import ValidationFailed


class InvalidQuery(ValidationFailed):
    """A bad dashboard query (dates, range, interval): the gateway answers 400."""
    default_description = "The query is not valid."
