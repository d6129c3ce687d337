"""The analytics service's tables: per-lead facts and the daily aggregates the
dashboard reads (see docs/analytics.md). Created by alembic 0002."""
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


metadata = Base.metadata

PROCESSED_EVENTS = sa.Table(
    "processed_events", metadata,
    sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)

LEAD_FACTS = sa.Table(
    "lead_facts", metadata,
    sa.Column("lead_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("created_day", sa.Date),
    sa.Column("source", sa.String(100)),
    sa.Column("status", sa.String(20)),
    sa.Column("value", sa.Numeric(14, 2), nullable=False, server_default="0"),
    sa.Column("closed_day", sa.Date),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("version", sa.DateTime(timezone=True)),
)

DAILY_LEADS = sa.Table(
    "daily_leads", metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("created", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_now_closed", sa.Integer, nullable=False, server_default="0"),
)

DAILY_CLOSED = sa.Table(
    "daily_closed", metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("closed_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revenue", sa.Numeric(16, 2), nullable=False, server_default="0"),
)

CAMPAIGN_DAYS = sa.Table(
    "campaign_days", metadata,
    sa.Column("meta_campaign_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("clicks", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("spend", sa.Numeric(16, 2), nullable=False, server_default="0"),
)
