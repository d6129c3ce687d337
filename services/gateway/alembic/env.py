from crm_common.migrations import run_alembic_env
from gateway.keys import metadata

run_alembic_env(metadata)
