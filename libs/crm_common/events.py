"""The envelope every published event carries (contract section 5)."""
import uuid

from crm_common.timefmt import utcnow, iso_timestamp

EVENT_VERSION = 1


def envelope(payload, event_id=None, occurred_at=None):
    body = {"event_id": str(event_id or uuid.uuid4()),
            "occurred_at": iso_timestamp(occurred_at or utcnow()),
            "version": EVENT_VERSION}
    body.update(payload)
    return body


def events_exchange_name(service_name):
    """nameko's name for a service's event exchange."""
    return "%s.events" % service_name
