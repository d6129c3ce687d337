"""The Lead resource and its activity timeline (contract section 3)."""
import datetime as dt
from typing import Literal, Optional
from uuid import UUID

from pydantic import Field, field_validator

from gateway.schemas.base import (ApiModel, Email, ListQuery, ReadOnly, Text, Timestamp,
                                  create_body, update_body)

STATUSES = ("new", "contacted", "qualified", "proposal", "closed")
Status = Literal["new", "contacted", "qualified", "proposal", "closed"]
LOGGABLE_TYPES = Literal["email_opened", "page_visit", "call", "note_created", "meeting"]
ActivityType = Literal["email_opened", "page_visit", "call", "note_created", "status_change",
                       "meeting"]
SORT_FIELDS = ("name", "email", "company", "status", "source", "score", "value", "createdAt",
               "updatedAt", "lastInteractionAt")
LeadSort = Literal[tuple(f for name in SORT_FIELDS for f in (name, "-" + name))]


class MetaLeadAd(ApiModel):
    """Where a lead from a Meta lead ad came from (ids as Meta writes them)."""
    leadgen_id: str
    form_id: Optional[str] = None
    ad_id: Optional[str] = None
    campaign_id: Optional[str] = None
    page_id: Optional[str] = None


class Lead(ApiModel):
    id: UUID = ReadOnly()
    name: Text(1, 200)
    email: Email = Field(description="unique among leads, case-insensitively; stored lower-cased")
    phone: Optional[Text(0, 50)] = None
    company: Optional[Text(0, 200)] = None
    job_title: Optional[Text(0, 200)] = None
    status: Status = Field("new", description="`closed` means won")
    source: Text(1, 100) = "Manual"
    score: int = Field(None, ge=0, le=100, strict=True,
                       description="0-100; set by the rule-based scorer when omitted")
    value: float = Field(0.0, ge=0, le=999_999_999_999.99, strict=True, allow_inf_nan=False,
                         description="estimated deal value")
    owner_id: Optional[Text(0, 100)] = None
    created_at: dt.datetime = ReadOnly()
    updated_at: dt.datetime = ReadOnly()
    last_interaction: Optional[dt.date] = ReadOnly(
        description="date part of lastInteractionAt")
    last_interaction_at: Optional[dt.datetime] = ReadOnly(
        description="newest timestamp among logged activities (status changes excluded)")
    closed_at: Optional[dt.datetime] = ReadOnly(
        description="when the status became `closed` (won); null while it is not closed")
    meta_lead_ad: Optional[MetaLeadAd] = ReadOnly(
        description="the Meta lead-ad submission the lead came from; null for other leads")


LeadCreate = create_body(Lead, "LeadCreate", required=("name", "email"),
                         defaults={"status": "new", "source": "Manual", "value": 0.0})
LeadUpdate = update_body(Lead, "LeadUpdate")


class LeadListQuery(ListQuery):
    status: Optional[str] = Field(
        None, max_length=100, description="one status or a comma list: " + ", ".join(STATUSES))
    search: Optional[str] = Field(None, max_length=200,
                                  description="case-insensitive substring of name, email or company")
    source: Optional[str] = Field(None, max_length=100)
    owner_id: Optional[str] = Field(None, max_length=100)
    min_score: Optional[int] = Field(None, ge=0, le=100)
    sort: LeadSort = Field("-createdAt", description="field name, `-` for descending")

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


class Activity(ApiModel):
    id: UUID = ReadOnly()
    type: ActivityType
    title: Text(1, 200)
    description: Optional[Text(0, 5000)] = None
    timestamp: dt.datetime = Field(None, description="defaults to now")


class ActivityCreate(ApiModel):
    type: LOGGABLE_TYPES = Field(description="`status_change` is written by the system only")
    title: Text(1, 200)
    description: Optional[Text(0, 5000)] = None
    timestamp: Optional[Timestamp] = Field(None, description="defaults to now")


class ActivityListQuery(ListQuery):
    pass
