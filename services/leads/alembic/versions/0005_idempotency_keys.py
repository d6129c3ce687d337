"""Idempotency keys: each write RPC applied once per key (crm_common/idempotency.py).

Revision ID: 0005
Revises: 0004
"""
from crm_common.migrations import create_idempotency_table

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    from alembic import op

    create_idempotency_table(op)


def downgrade():
    from alembic import op

    op.drop_table("idempotency_keys")
