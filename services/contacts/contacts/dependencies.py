"""The contacts service's dependencies."""
from pathlib import Path

from crm_common.db import Database

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def ContactsDatabase():
    return Database(ALEMBIC_DIR, idempotency_keys=True)
