from crm_common.migrations import run_alembic_env
from tasks.models import Base

run_alembic_env(Base.metadata)
