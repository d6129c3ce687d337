"""The tasks service's dependencies."""
from pathlib import Path

from nameko.exceptions import RemoteError

from crm_common.db import Database
from crm_common.errors import Unavailable
from tasks.exceptions import InvalidTask

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"

# Shorter than the gateway's default wait (CRM_RPC_TIMEOUT, 5 s): when leads or
# campaigns is slow, the client gets this service's own 503 and no task is
# made, not a gateway timeout while the task might still be created.
RELATED_CHECK_TIMEOUT = 3.0


def TasksDatabase():
    return Database(ALEMBIC_DIR, idempotency_keys=True)


class RelatedRecords:
    """Asks the owning service whether the lead or campaign a task points at
    exists (`leads` and `campaigns` are the service's RpcClient proxies)."""

    def __init__(self, leads, campaigns):
        # related_to_type -> (owning service, its lookup, the error meaning "no such record")
        self._lookups = {"lead": ("leads", leads.get_lead, "LeadNotFound"),
                         "campaign": ("campaigns", campaigns.get_campaign, "CampaignNotFound")}

    def ensure_exists(self, related_to_type, related_to_id):
        """Raise InvalidTask (naming relatedToId) when the record does not
        exist, Unavailable when its service cannot say."""
        if related_to_type not in self._lookups:
            return                                    # "general": nothing to point at
        service, lookup, not_found = self._lookups[related_to_type]
        try:
            lookup(str(related_to_id))
        except RemoteError as exc:
            if exc.exc_type == not_found:
                raise InvalidTask.for_field("relatedToId", "no %s with this id" % related_to_type)
            if exc.exc_type == "Unavailable":         # its database is down
                raise Unavailable("The %s service is unavailable; try again shortly." % service)
            raise
