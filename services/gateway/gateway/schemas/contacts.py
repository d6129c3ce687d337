"""The Contact resource and its history (contract section 3)."""
import datetime as dt
from typing import Literal, Optional
from uuid import UUID

from pydantic import Field

from gateway.schemas.base import (ApiModel, Email, ListQuery, ReadOnly, Text, create_body,
                                  update_body)
from gateway.schemas.leads import Activity, ActivityCreate

SORT_FIELDS = ("name", "email", "company", "role", "createdAt", "updatedAt", "lastContacted")
ContactSort = Literal[tuple(f for name in SORT_FIELDS for f in (name, "-" + name))]


class Contact(ApiModel):
    id: UUID = ReadOnly()
    name: Text(1, 200)
    email: Email = Field(description="not unique among contacts; stored lower-cased")
    role: Optional[Text(0, 200)] = None
    company: Optional[Text(0, 200)] = None
    phone: Optional[Text(0, 50)] = None
    notes: Optional[Text(0, 20_000)] = None
    lead_id: Optional[UUID] = ReadOnly(
        description="the lead this contact was converted from (set by POST /api/leads/{id}/convert)")
    last_contacted: Optional[dt.datetime] = ReadOnly(
        description="newest timestamp among the contact's logged history")
    created_at: dt.datetime = ReadOnly()
    updated_at: dt.datetime = ReadOnly()


ContactCreate = create_body(Contact, "ContactCreate", required=("name", "email"))
ContactUpdate = update_body(Contact, "ContactUpdate")


class ContactListQuery(ListQuery):
    search: Optional[str] = Field(None, max_length=200,
                                  description="case-insensitive substring of name, email or company")
    company: Optional[str] = Field(None, max_length=200,
                                   description="exact company name, case-insensitive")
    sort: ContactSort = Field("-createdAt", description="field name, `-` for descending")


class HistoryItem(Activity):
    """An interaction logged on a contact: a lead activity's shape."""


class HistoryCreate(ActivityCreate):
    """Log an interaction on a contact; `status_change` is not loggable."""


class HistoryListQuery(ListQuery):
    pass
