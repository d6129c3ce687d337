"""When the last successful sync finished, beside the latest sync's outcome.

`sync_state` kept only the latest attempt: after a failed sync nobody could
tell how old the stored figures are. `last_ok_at` answers that, for the
service's metrics (crm_meta_sync_last_success_timestamp_seconds: alert when
it falls behind the sync interval). Filled from the latest attempt when that
one succeeded.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("sync_state", sa.Column("last_ok_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE sync_state SET last_ok_at = at WHERE status = 'ok'")


def downgrade():
    op.drop_column("sync_state", "last_ok_at")
