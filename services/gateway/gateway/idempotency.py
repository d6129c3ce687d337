"""The Idempotency-Key header: every write request gets an idempotency key,
which the services use to apply the request once (crm_common/idempotency.py,
docs/idempotency.md).

A write is a POST, PUT, PATCH or DELETE whose `@operation` does not say
`idempotency_key=False`. Its key is the client's `Idempotency-Key` (1-255
visible ASCII characters, else a 400 naming the header), so a client's retry
is applied once; without the header, a fresh key per HTTP request, so a
request the broker redelivers to another service instance is applied once.
`ServiceCaller` passes the key to the service in the nameko context. The same
declaration documents the header in the OpenAPI document.
"""
import uuid

from crm_common.idempotency import HEADER, MAX_KEY_LENGTH, RETENTION, valid_key
from gateway.errors import bad_request

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RULE = "1-%d visible ASCII characters" % MAX_KEY_LENGTH

PARAMETER = {
    "name": HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
               "pattern": "^[!-~]+$"},
    "description": "Makes a retry safe: the same request again with the same key (within %d h) "
                   "gets the first answer and changes nothing; the key with another request is "
                   "a 422. %s. Without it, the request gets a key of its own."
                   % (RETENTION.total_seconds() // 3600, RULE),
}


def takes_key(method, spec):
    """Whether a responder (its `@operation` declaration `spec`) takes a key."""
    return (method.upper() in WRITE_METHODS and spec is not None
            and spec.get("idempotency_key", True))


class IdempotencyKeys:
    """Sets `req.context.idempotency_key` on write requests (after routing,
    so that the route's declaration decides, and after authentication)."""

    def process_resource(self, req, resp, resource, params):
        if resource is None:
            return
        responder = getattr(resource, "on_" + req.method.lower(), None)
        if not takes_key(req.method, getattr(responder, "__openapi__", None)):
            return
        given = req.get_header(HEADER)
        if given is not None and not valid_key(given):
            raise bad_request("The %s header must be %s." % (HEADER, RULE),
                              errors=[{"field": HEADER, "message": "must be %s" % RULE}])
        req.context.idempotency_key = given if given is not None else uuid.uuid4().hex
