"""The Campaign resource, synced from Meta (contract section 3, "Campaign")."""
import datetime as dt
from typing import Literal, Optional
from uuid import UUID

from pydantic import Field, field_validator

from gateway.schemas.base import ApiModel, ListQuery
from gateway.schemas.dashboard import DATE_ONLY

STATUSES = ("active", "paused", "archived", "deleted")
SORT_FIELDS = ("name", "status", "objective", "spend", "impressions", "clicks", "leads",
               "revenue", "lastSyncedAt")
CampaignSort = Literal[tuple(f for name in SORT_FIELDS for f in (name, "-" + name))]


class Day(ApiModel):
    date: dt.date
    spend: float
    impressions: int
    clicks: int
    leads: int
    revenue: float


class Campaign(ApiModel):
    id: UUID
    meta_campaign_id: str
    name: str
    status: str = Field(description="lower-case: active, paused, archived, deleted")
    objective: Optional[str] = Field(None, description="in words: Sales, Leads, Traffic, ...")
    spend: float = Field(description="sum over the daily rows in the range")
    impressions: int
    clicks: int
    leads: int
    revenue: float
    cpl: Optional[float] = Field(description="spend / leads, 2 places; null when leads is 0")
    roas: Optional[float] = Field(description="revenue / spend, 2 places; null when spend is 0")
    last_synced_at: dt.datetime


class CampaignDetail(Campaign):
    daily: list[Day] = Field(description="every synced day, oldest first")


class SyncResult(ApiModel):
    status: Literal["ok"]
    campaigns: int = Field(description="campaigns synced")
    days: int = Field(description="daily insight rows read and stored (upserted)")
    finished_at: dt.datetime


def _date(value):
    if value is None:
        return None
    try:
        if DATE_ONLY.fullmatch(value):
            dt.date.fromisoformat(value)
            return value
    except ValueError:
        pass
    raise ValueError("must be a date (YYYY-MM-DD)")


class CampaignListQuery(ListQuery):
    status: Optional[str] = Field(None, max_length=100,
                                  description="one status or a comma list: "
                                  + ", ".join(STATUSES))
    start_date: Optional[str] = Field(None, description="first day (YYYY-MM-DD) of the sums",
                                      json_schema_extra={"format": "date"})
    end_date: Optional[str] = Field(None, description="last day (YYYY-MM-DD), inclusive",
                                    json_schema_extra={"format": "date"})
    sort: CampaignSort = Field("-spend", description="field name, `-` for descending")

    @field_validator("start_date", "end_date")
    @classmethod
    def a_date(cls, value):
        return _date(value)

    @field_validator("status")
    @classmethod
    def known_statuses(cls, value):
        if value is None:
            return None
        wanted = [s.strip() for s in value.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in STATUSES]
        if unknown or not wanted:
            raise ValueError("unknown status %s; one of %s" % (",".join(unknown), ", ".join(STATUSES)))
        return ",".join(wanted)
