"""Request and response models of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from crm_profile.customers.schemas import ExternalId

#: A device or cookie id as the shop's front end sends it: printable, no whitespace.
AnonymousId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
MergeRule = Literal["manual", "email", "phone"]


class IdentifyRequest(BaseModel):
    """``POST /v1/identify``: the customer an anonymous id belongs to."""

    model_config = ConfigDict(extra="forbid")

    customer_external_id: ExternalId
    anonymous_id: AnonymousId


class IdentityRead(BaseModel):
    """An anonymous id and the customer it is linked to."""

    customer_id: uuid.UUID
    customer_external_id: str = Field(description="The customer the anonymous id is linked to")
    anonymous_id: str
    linked_at: datetime
    events_linked: int = Field(
        description="Anonymous behaviour events this request attached to the customer"
    )


class DuplicatePair(BaseModel):
    """Two active customers that look like the same person; the older one first."""

    customer_id: uuid.UUID
    customer_external_id: str
    duplicate_id: uuid.UUID
    duplicate_external_id: str
    reasons: list[Literal["email", "phone"]]


class DuplicatePage(BaseModel):
    """A page of candidate duplicates."""

    items: list[DuplicatePair]
    next_cursor: str | None


class MergeRequest(BaseModel):
    """``POST /v1/customers/{external_id}/merge``: the customer to fold into the path's one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    duplicate_external_id: ExternalId
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class MergeRead(BaseModel):
    """One merge, open or undone."""

    id: uuid.UUID
    survivor_id: uuid.UUID
    survivor_external_id: str
    duplicate_id: uuid.UUID
    duplicate_external_id: str
    rule: MergeRule
    reason: str | None
    filled_fields: list[str] = Field(
        description="Empty fields of the survivor that were filled from the duplicate"
    )
    merged_at: datetime
    merged_by: str
    undone_at: datetime | None
    undone_by: str | None


class MergePage(BaseModel):
    """A page of merges."""

    items: list[MergeRead]
    next_cursor: str | None
