"""Request and response models of the tag rules API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

#: A tag: what profile accepts on ``crm.segment.tag.changed`` (1-64 of a-z 0-9 _ : -).
TAG_PATTERN = r"^[a-z0-9_:\-]{1,64}$"
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TAG_PATTERN)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class TagRuleWrite(BaseModel):
    """``PUT /v1/tag-rules/{tag}``: the whole tag rule (omitted fields take their defaults)."""

    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any] = Field(
        description="A rule of the segment rule language (docs/segment/rules.md)",
        examples=[{"field": "value_score", "op": "gte", "value": 80}],
    )
    description: Description = ""
    enabled: StrictBool = True


class TagRuleRead(BaseModel):
    """A tag rule: the tag its members carry, and the segment that keeps them."""

    model_config = ConfigDict(from_attributes=True)

    tag: str
    segment_id: uuid.UUID = Field(validation_alias="id")
    rule: dict[str, Any]
    description: str
    enabled: bool
    version: int = Field(description="Bumped when the rule or enabled changes")
    evaluated_version: int = Field(
        description="Version whose members carry the tag (behind version while re-evaluating)"
    )
    members_count: int = Field(description="Customers carrying the tag")
    created_at: datetime
    updated_at: datetime
    evaluated_at: datetime | None


class TagRuleList(BaseModel):
    """Every tag rule, by tag."""

    items: list[TagRuleRead]
