"""Events the segment service publishes (its payload models and subjects)."""

from __future__ import annotations

import uuid
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


class MembershipChangedV1(_Payload):
    """A customer entered or left a segment (rule, built-in or tag rule)."""

    segment_id: uuid.UUID
    segment_name: str
    #: ``rule``, ``rfm``, ``lifecycle``, ``cluster`` or ``tag``.
    segment_kind: str
    customer_external_id: str
    change: Literal["entered", "exited"]
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
MEMBERSHIP_CHANGED = EventType(
    "crm.segment.membership.changed",
    MembershipChangedV1,
    description="A customer entered or left a segment",
)
EXPORT_CONTRIBUTED = EventType(
    "crm.segment.export.contributed",
    ExportContributedV1,
    description="Segment's part of a GDPR export",
)

#: Every event this service publishes; ``docs/events.md`` is checked against it.
PUBLISHED: list[EventType[Any]] = [TAG_CHANGED, MEMBERSHIP_CHANGED, EXPORT_CONTRIBUTED]
