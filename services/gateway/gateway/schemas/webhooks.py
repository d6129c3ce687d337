"""Meta's Lead Ads webhook, as Meta sends it (documentation: the webhook reads
the raw body itself, because the signature is over its exact bytes)."""
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

MetaId = Union[str, int]


class Handshake(BaseModel):
    mode: Literal["subscribe"] = Field(alias="hub.mode")
    verify_token: str = Field(alias="hub.verify_token", description="must be META_VERIFY_TOKEN")
    challenge: str = Field(alias="hub.challenge", description="echoed back as text/plain")


class LeadgenValue(BaseModel):
    model_config = ConfigDict(extra="allow")
    leadgen_id: MetaId = Field(description="a string or a JSON number")
    page_id: Optional[MetaId] = None
    form_id: Optional[MetaId] = None
    ad_id: Optional[MetaId] = None
    adgroup_id: Optional[MetaId] = None
    created_time: Optional[int] = None


class Change(BaseModel):
    model_config = ConfigDict(extra="allow")
    field: str = Field(description="`leadgen` changes are used; others are acknowledged")
    value: Union[LeadgenValue, dict]


class Entry(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Optional[MetaId] = None
    time: Optional[int] = None
    changes: list[Change] = []


class WebhookDelivery(BaseModel):
    model_config = ConfigDict(extra="allow")
    object: Optional[str] = Field(None, description="`page` for Lead Ads")
    entry: list[Entry] = []


class Acknowledged(BaseModel):
    received: int = Field(description="how many leadgen changes were queued")
