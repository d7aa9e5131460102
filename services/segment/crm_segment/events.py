"""Events the segment service publishes (its payload models and subjects)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from crm_common.events import EventType


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True)


class TagChangedV1(_Payload):
    """A derived tag (from a tag rule) was added to or removed from a customer."""

    customer_external_id: str
    tag: str
    change: Literal["added", "removed"]
    changed_at: datetime


class ExportContributedV1(_Payload):
    """Segment's part of a GDPR export: everything it holds about the customer."""

    export_id: str
    customer_external_id: str
    service: Literal["segment"]
    data: dict[str, Any]


TAG_CHANGED = EventType(
    "crm.segment.tag.changed", TagChangedV1, description="A derived tag was added or removed"
)
EXPORT_CONTRIBUTED = EventType(
    "crm.segment.export.contributed",
    ExportContributedV1,
    description="Segment's part of a GDPR export",
)

#: Every event this service publishes; ``docs/events.md`` is checked against it.
PUBLISHED: list[EventType[Any]] = [TAG_CHANGED, EXPORT_CONTRIBUTED]
