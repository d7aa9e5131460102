"""Profile's manual tags (``crm.profile.tag.changed``) → ``customer_tag`` with origin ``manual``.

The payload carries no time of its own, so the event's ``ce-time`` orders the changes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription
from crm_segment.projections import service


class TagChanged(BaseModel):
    """``crm.profile.tag.changed``."""

    customer_external_id: str
    tag: str
    change: Literal["added", "removed"]


async def on_tag_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Add or remove the manual tag as of the event's time."""
    event = TagChanged.model_validate(envelope.data)
    await service.change_manual_tag(
        session, event.customer_external_id, event.tag, event.change == "added", envelope.time
    )


SUBSCRIPTION = Subscription(
    subject="crm.profile.tag.changed",
    durable="segment-profile-tags",
    handler=on_tag_changed,
    batch_transaction=True,
)
