"""``crm.segment.tag.changed``: derived tags shown on the customer next to the manual ones."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription
from crm_profile.customers.schemas import ExternalId
from crm_profile.tags import service
from crm_profile.tags.schemas import TagName


class SegmentTagChanged(BaseModel):
    """Profile's own reading of segment's ``TagChangedV1`` (only the fields it uses)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_external_id: ExternalId
    tag: TagName
    change: Literal["added", "removed"]
    changed_at: AwareDatetime = Field(description="When segment's tag rule changed its verdict")


async def on_tag_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Add or remove the customer's ``segment`` tag; an invalid payload is dead-lettered."""
    event = SegmentTagChanged.model_validate(envelope.data)
    await service.apply_segment_change(
        session, event.customer_external_id, event.tag, event.change, event.changed_at
    )


SUBSCRIPTION = Subscription(
    subject="crm.segment.tag.changed", durable="profile-segment-tags", handler=on_tag_changed
)
