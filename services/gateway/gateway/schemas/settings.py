"""Settings, health and the other small documents of the gateway."""
import datetime as dt
from typing import Literal, Optional

from pydantic import BaseModel


class LastSync(BaseModel):
    at: Optional[dt.datetime] = None
    status: Literal["ok", "error", "running"]
    error: Optional[str] = None


class Config(BaseModel):
    apiKey: str
    webhookUrl: str
    metaVerifyToken: Optional[str] = None
    metaAppSecretSet: bool
    metaAdAccountId: Optional[str] = None
    lastSync: Optional[LastSync] = None


class NewKey(BaseModel):
    apiKey: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    services: dict[str, str]
