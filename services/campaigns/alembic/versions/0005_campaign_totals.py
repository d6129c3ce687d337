"""Each campaign's metrics summed over all its days, kept on the campaign.

The list without a date range (the default) summed every day of every
campaign before it could sort and page: a scan of all of campaign_days
(~125 ms at 1M day rows, bench/indexes.py). The sync now keeps these totals
(SyncRepository.refresh_totals, in the transaction that writes the days);
here they are filled once from the days already stored. Every sort of the
list reads an index (`status` has one already).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TOTALS = (("total_spend", sa.Numeric), ("total_impressions", sa.BigInteger),
          ("total_clicks", sa.BigInteger), ("total_leads", sa.BigInteger),
          ("total_revenue", sa.Numeric))

# Every sort of the list reads an index in its order, then id (the tiebreak);
# objective is nullable and its NULLs stay last both ways: one per direction.
INDEXES = (
    ("campaigns_total_spend_idx", ["total_spend", "id"]),
    ("campaigns_total_impressions_idx", ["total_impressions", "id"]),
    ("campaigns_total_clicks_idx", ["total_clicks", "id"]),
    ("campaigns_total_leads_idx", ["total_leads", "id"]),
    ("campaigns_total_revenue_idx", ["total_revenue", "id"]),
    ("campaigns_name_idx", ["name", "id"]),
    ("campaigns_last_synced_at_idx", ["last_synced_at", "id"]),
    ("campaigns_objective_idx", ["objective", "id"]),
    ("campaigns_objective_desc_idx", [sa.text("objective DESC NULLS LAST"), sa.text("id DESC")]),
)


def upgrade():
    for name, kind in TOTALS:
        op.add_column("campaigns", sa.Column(name, kind, nullable=False, server_default="0"))
    op.execute("""
        UPDATE campaigns SET total_spend = s.spend, total_impressions = s.impressions,
               total_clicks = s.clicks, total_leads = s.leads, total_revenue = s.revenue
        FROM (SELECT campaign_id, sum(spend) AS spend, sum(impressions) AS impressions,
                     sum(clicks) AS clicks, sum(leads) AS leads, sum(revenue) AS revenue
              FROM campaign_days GROUP BY campaign_id) AS s
        WHERE campaigns.id = s.campaign_id
    """)
    for name, columns in INDEXES:
        op.create_index(name, "campaigns", columns)


def downgrade():
    for name, _ in INDEXES:
        op.drop_index(name, table_name="campaigns")
    for name, _ in TOTALS:
        op.drop_column("campaigns", name)
