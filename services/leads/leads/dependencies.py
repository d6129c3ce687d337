"""The leads service's dependencies."""
from pathlib import Path

from crm_common.config import Settings
from crm_common.db import Database

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def LeadsDatabase():
    return Database(ALEMBIC_DIR)


def remote_timeout():
    """How long a call to another service may take: well inside the gateway's
    own CRM_RPC_TIMEOUT, so the gateway hears our 503 rather than its own."""
    return max(1.0, Settings.from_env().rpc_timeout * 0.6)
