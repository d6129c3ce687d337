"""The dashboard's query and responses (contract section 3, "Dashboard")."""
import datetime as dt
import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

DEFAULT_DAYS = 30
DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

Trend = Literal["up", "down", "flat"]
Interval = Literal["day", "week", "month"]


def today_utc():
    return dt.datetime.now(dt.timezone.utc).date()


class DashboardQuery(BaseModel):
    """`startDate`..`endDate`, inclusive; by default the 30 days ending today
    (UTC). A bad date, or `startDate` after `endDate`, is a 400."""
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, extra="ignore")

    start_date: Optional[str] = Field(
        None, description="first day (YYYY-MM-DD); default endDate - 29 days",
        json_schema_extra={"format": "date"})
    end_date: Optional[str] = Field(
        None, description="last day (YYYY-MM-DD), inclusive; default today (UTC)",
        json_schema_extra={"format": "date"})

    @field_validator("start_date", "end_date")
    @classmethod
    def a_date(cls, value):
        # Only YYYY-MM-DD: pydantic's own date type would also take numbers and timestamps.
        if value is None:
            return None
        try:
            if DATE_ONLY.fullmatch(value):
                dt.date.fromisoformat(value)
                return value
        except ValueError:
            pass
        raise ValueError("must be a date (YYYY-MM-DD)")


class RevenueChartQuery(DashboardQuery):
    interval: Interval = Field("day", description="bucket: day, week (ISO, from Monday) or month")


def resolve_range(query, today=None):
    """(start, end) as dates from a validated query, with the defaults
    applied; None when start is after end."""
    end = dt.date.fromisoformat(query["end_date"]) if query.get("end_date") else (
        today or today_utc())
    if query.get("start_date"):
        start = dt.date.fromisoformat(query["start_date"])
    else:
        try:
            start = end - dt.timedelta(days=DEFAULT_DAYS - 1)
        except OverflowError:
            start = dt.date.min
    return (start, end) if start <= end else None


class Figure(BaseModel):
    value: float
    change: float = Field(description="percent change against the previous period of equal "
                                      "length, one decimal (0.0 when both are 0; 100.0 when "
                                      "only the previous is 0)")
    trend: Trend


class CountFigure(Figure):
    value: int


class Stats(BaseModel):
    revenue: Figure = Field(description="value of the leads closed (won) in the range")
    active_leads: CountFigure = Field(description="leads not closed at the end of the range")
    conversion_rate: Figure = Field(description="% of the leads created in the range now closed")
    link_clicks: CountFigure = Field(description="campaign clicks in the range")


class RevenuePoint(BaseModel):
    date: dt.date = Field(description="the bucket's first day (the day, ISO week's Monday, "
                                      "or month's 1st)")
    label: str = Field(description="`Mon`..`Sun`, `W11` (ISO week number) or `Mar`")
    value: float


class SourcePoint(BaseModel):
    name: str
    value: int
