"""The campaigns service's tables. Nothing outside this service reads them.

Campaigns arrive from the Meta sync (a later issue); until it runs the table
is empty, and every lookup is honestly "not found".
"""
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        # Meta's id is what the sync matches on, so a campaign is stored once.
        sa.Index("campaigns_meta_campaign_id_key", "meta_campaign_id", unique=True),
        sa.Index("campaigns_status_idx", "status"),
        # Every sort of the list, then id (migration 0005); objective's NULLs
        # stay last both ways, so it has an index per direction.
        sa.Index("campaigns_total_spend_idx", "total_spend", "id"),
        sa.Index("campaigns_total_impressions_idx", "total_impressions", "id"),
        sa.Index("campaigns_total_clicks_idx", "total_clicks", "id"),
        sa.Index("campaigns_total_leads_idx", "total_leads", "id"),
        sa.Index("campaigns_total_revenue_idx", "total_revenue", "id"),
        sa.Index("campaigns_name_idx", "name", "id"),
        sa.Index("campaigns_last_synced_at_idx", "last_synced_at", "id"),
        sa.Index("campaigns_objective_idx", "objective", "id"),
        sa.Index("campaigns_objective_desc_idx", sa.text("objective DESC NULLS LAST"),
                 sa.text("id DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(pg.UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    meta_campaign_id: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(400))
    status: Mapped[str] = mapped_column(sa.String(20))
    objective: Mapped[str | None] = mapped_column(sa.String(100))
    last_synced_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    # Every day's metrics summed (the list without a date range reads these,
    # not the days); the sync keeps them (SyncRepository.refresh_totals).
    total_spend: Mapped[sa.Numeric] = mapped_column(sa.Numeric, default=0, server_default="0")
    total_impressions: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    total_clicks: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    total_leads: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    total_revenue: Mapped[sa.Numeric] = mapped_column(sa.Numeric, default=0, server_default="0")


class CampaignDay(Base):
    """One campaign's insight totals for one day, as Meta last reported them."""
    __tablename__ = "campaign_days"
    __table_args__ = (sa.Index("campaign_days_date_idx", "date"),)

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    date: Mapped[sa.Date] = mapped_column(sa.Date, primary_key=True)
    spend: Mapped[sa.Numeric] = mapped_column(sa.Numeric, default=0)
    impressions: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    clicks: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    leads: Mapped[int] = mapped_column(sa.Integer, default=0)
    revenue: Mapped[sa.Numeric] = mapped_column(sa.Numeric, default=0)
    updated_at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))


class SyncState(Base):
    """The latest sync's outcome: a single row (id 1)."""
    __tablename__ = "sync_state"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(10))
    at: Mapped[sa.DateTime] = mapped_column(sa.DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(sa.Text)
    last_ok_at: Mapped[sa.DateTime | None] = mapped_column(sa.DateTime(timezone=True))
