"""Every error the gateway answers, in the contract's one JSON shape:
{"title", "description", "errors"?}. Remote (service) errors map to HTTP in
one table, keyed by the exception's dotted path, so the gateway never imports
service code."""
import logging
import re

import falcon

from gateway.rpc import RemoteError, ServiceUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
STATUS_PREFIX = re.compile(r"^\d{3} ")

# exc_path of a service's exception -> HTTP status. Subclasses of the shared
# crm_common errors are listed by their own path (nameko sends the concrete
# class), and the shared bases catch whatever a service raises of them directly.
REMOTE_ERRORS = {
    "crm_common.errors.NotFound": falcon.HTTP_404,
    "crm_common.errors.Conflict": falcon.HTTP_409,
    "crm_common.errors.ValidationFailed": falcon.HTTP_422,
    "crm_common.errors.Unavailable": falcon.HTTP_503,
    "leads.exceptions.LeadNotFound": falcon.HTTP_404,
    "leads.exceptions.DuplicateEmail": falcon.HTTP_409,
    "leads.exceptions.InvalidLead": falcon.HTTP_422,
    "contacts.exceptions.ContactNotFound": falcon.HTTP_404,
    "contacts.exceptions.InvalidContact": falcon.HTTP_422,
    "tasks.exceptions.TaskNotFound": falcon.HTTP_404,
    "tasks.exceptions.InvalidTask": falcon.HTTP_422,
    "campaigns.exceptions.CampaignNotFound": falcon.HTTP_404,
    "campaigns.exceptions.InvalidCampaignQuery": falcon.HTTP_422,
    "campaigns.exceptions.SyncRunning": falcon.HTTP_409,
    "campaigns.exceptions.GraphRefused": falcon.HTTP_502,
    "analytics.exceptions.InvalidQuery": falcon.HTTP_400,
}

# Extra detail keys a remote error may pass on to the client.
PUBLIC_DETAILS = ("existingId", "errors")


class JsonError(falcon.HTTPError):
    """An HTTPError whose body may carry `errors` and extra public fields."""

    def __init__(self, status, description=None, errors=None, headers=None, **extra):
        super().__init__(status, description=description, headers=headers)
        self.errors = errors
        self.extra = extra

    def to_dict(self, obj_type=dict):
        body = super().to_dict(obj_type)
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def validation_error(errors, description="The request body is not valid."):
    return JsonError(falcon.HTTP_422, description, errors=errors)


def bad_request(description, errors=None):
    return JsonError(falcon.HTTP_400, description, errors=errors)


def unavailable(description):
    return JsonError(falcon.HTTP_503, description,
                     headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def serialize_error(req, resp, exception):
    """Falcon's error serializer: always JSON, whatever the client accepts."""
    body = exception.to_dict()
    body["title"] = STATUS_PREFIX.sub("", body.get("title") or "")   # "404 Not Found" -> "Not Found"
    resp.content_type = falcon.MEDIA_JSON
    resp.media = body


def handle_remote_error(req, resp, exc, params):
    status = REMOTE_ERRORS.get(exc.exc_path)
    if status is None:
        log.error("unmapped remote error %s: %s", exc.exc_path, exc.value)
        raise falcon.HTTPInternalServerError(description="The request could not be completed.")
    details = exc.details
    description = details.get("description") or exc.value
    extra = {k: v for k, v in details.items() if k in PUBLIC_DETAILS}
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == falcon.HTTP_503 else None
    if status == falcon.HTTP_422:
        extra.setdefault("errors", [])
    raise JsonError(status, description, headers=headers, **extra)


def handle_unavailable(req, resp, exc, params):
    log.warning("service unavailable: %s", exc)
    raise unavailable("The %s service is unavailable; try again shortly." % exc.service)


def handle_unexpected(req, resp, exc, params):
    """Anything else: log it whole, tell the client nothing internal."""
    if isinstance(exc, falcon.HTTPError):
        raise exc
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise falcon.HTTPInternalServerError(description="The request could not be completed.")


def install(app):
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(RemoteError, handle_remote_error)
    app.add_error_handler(ServiceUnavailable, handle_unavailable)
