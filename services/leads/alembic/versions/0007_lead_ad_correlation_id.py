"""The correlation id of the webhook delivery that brought a lead-ad submission.

A submission's lead may be made later, by the retry timer (after a failed
fetch, or when the timer takes a fresh submission first): its log lines and
the events of its lead then carry the delivery's correlation id (the
gateway's X-Request-ID) rather than the timer's own (README, Logs).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("lead_ad_submissions", sa.Column("correlation_id", sa.String(128)))


def downgrade():
    op.drop_column("lead_ad_submissions", "correlation_id")
