"""Request and response models of the segments API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

SegmentKind = Literal["rule", "rfm", "lifecycle", "cluster", "tag"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
ExternalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@\-]+$")]
#: A rule as JSON; its shape is checked by the rule compiler (422 names the JSON path).
Rule = Annotated[
    dict[str, Any],
    Field(
        description="A rule of the segment rule language (docs/segment/rules.md)",
        examples=[{"all": [{"field": "country", "op": "eq", "value": "DE"}]}],
    ),
]
PREVIEW_SAMPLE = 20


class SegmentCreate(BaseModel):
    """``POST /v1/segments``: a rule segment."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    rule: Rule


class SegmentUpdate(BaseModel):
    """``PATCH /v1/segments/{id}``: only the fields sent change (none may be null)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    rule: Rule | None = None
    enabled: StrictBool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        nulls = [k for k in self.model_fields_set if getattr(self, k) is None]
        if nulls:
            raise ValueError(f"may not be null: {', '.join(sorted(nulls))}")
        return self


class SegmentRead(BaseModel):
    """A segment as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    kind: SegmentKind
    key: str | None = Field(description="Group, stage or cluster of a built-in segment")
    tag: str | None = Field(description="Tag set on members (tag rules)")
    rule: dict[str, Any]
    enabled: bool
    version: int = Field(description="Bumped on every rule change")
    evaluated_version: int = Field(description="Version whose members are materialised")
    members_count: int
    created_at: datetime
    updated_at: datetime
    evaluated_at: datetime | None


class SegmentPage(BaseModel):
    """A page of segments, oldest first."""

    items: list[SegmentRead]
    next_cursor: str | None


class PreviewRequest(BaseModel):
    """``POST /v1/segments/preview``."""

    model_config = ConfigDict(extra="forbid")

    rule: Rule


class PreviewRead(BaseModel):
    """How many active customers match a rule now, and a sample of them."""

    count: int
    sample: list[str] = Field(description=f"Up to {PREVIEW_SAMPLE} external ids, sorted")


class MemberRead(BaseModel):
    """A (root) customer in a segment."""

    model_config = ConfigDict(from_attributes=True)

    customer_external_id: str
    entered_at: datetime


class MemberPage(BaseModel):
    """A page of members, by external id."""

    items: list[MemberRead]
    next_cursor: str | None


class CustomerSegmentRead(BaseModel):
    """A segment a customer is in."""

    id: uuid.UUID
    name: str
    kind: SegmentKind
    key: str | None
    tag: str | None
    entered_at: datetime


class CustomerSegments(BaseModel):
    """The segments of a customer (of its survivor when it was merged)."""

    customer_external_id: str = Field(description="The root customer the memberships belong to")
    segments: list[CustomerSegmentRead]
