"""Idempotency keys: each write RPC applied once per key (crm_common/idempotency.py).

Revision ID: 0003
Revises: 0002
"""
from crm_common.migrations import create_idempotency_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    from alembic import op

    create_idempotency_table(op)


def downgrade():
    from alembic import op

    op.drop_table("idempotency_keys")
