"""Building blocks of the schemas.

A resource is written once, as its full representation (what a GET returns),
with read-only fields marked. The create and update bodies are derived from it,
so a client may send back an object it read with one field changed.
"""
import datetime as dt
import re
from typing import Annotated, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value):
    if not EMAIL.match(value):
        raise ValueError("not a valid email")
    return value


Email = Annotated[str, Field(max_length=254, strict=True, json_schema_extra={"format": "email"}),
                  AfterValidator(_email)]


def _timestamp_text(value):
    # pydantic alone would also read a number as seconds since 1970.
    if not isinstance(value, (str, dt.datetime)):
        raise ValueError("must be an ISO 8601 timestamp (a string)")
    return value


# A timestamp in a body: ISO 8601 text only.
Timestamp = Annotated[dt.datetime, BeforeValidator(_timestamp_text)]


def Text(min_length=0, max_length=200):
    return Annotated[str, Field(min_length=min_length, max_length=max_length, strict=True)]


def ReadOnly(**kw):
    """A field the server writes; sent in a body, it is ignored."""
    return Field(json_schema_extra={"readOnly": True}, **kw)


class ApiModel(BaseModel):
    """camelCase on the wire; snake_case accepted in bodies; unknown fields refused.
    In answers every field is there (a default only says what a body may
    omit), so the document marks them all required there."""
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True, extra="forbid",
                              json_schema_serialization_defaults_required=True)


def read_only_fields(model):
    names = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra or {}
        if isinstance(extra, dict) and extra.get("readOnly"):
            names.update({name, info.alias or name})
    return frozenset(names)


def writable_fields(model):
    read_only = read_only_fields(model)
    return {name: info for name, info in model.model_fields.items() if name not in read_only}


def create_body(model, name, required, defaults=None):
    """The body of a create: the writable fields; `required` must be sent."""
    defaults = defaults or {}
    fields = {}
    for field, info in writable_fields(model).items():
        annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        if field in required:
            fields[field] = (annotation, Field(description=info.description))
        else:
            fields[field] = (annotation, Field(defaults.get(field), description=info.description))
    return create_model(name, __base__=ApiModel, **fields)


def update_body(model, name):
    """The body of a partial update: every writable field optional; null only
    where the representation allows null."""
    fields = {}
    for field, info in writable_fields(model).items():
        annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        fields[field] = (annotation, Field(None, description=info.description))
    return create_model(name, __base__=ApiModel, **fields)


class ErrorItem(BaseModel):
    field: str
    message: str


class Error(BaseModel):
    """Every error the API answers."""
    title: str
    description: Optional[str] = None
    errors: Optional[list[ErrorItem]] = None


class ListQuery(BaseModel):
    """Paging shared by every list route."""
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, extra="ignore")

    limit: int = Field(100, ge=1, le=1000, description="page size (1-1000)")
    # The bound is PostgreSQL's OFFSET range (bigint): past it, a 400 here
    # rather than a database error.
    offset: int = Field(0, ge=0, le=2**63 - 1, description="rows to skip")
