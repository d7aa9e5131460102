"""Profile's behaviour batches (``crm.profile.interaction.recorded``) → ``interaction_daily``.

One message carries up to 1,000 interactions; they are folded into the per-customer, per-day,
per-type/category/SKU aggregates with one set-based statement. Anonymous interactions (no
``customer_external_id``) are skipped: segments are about known customers; so are those of
customers erased after the batch was sent (``crm_segment.customers.tombstones``). Exactly-once comes
from the consumer's inbox (a redelivered batch is acked without being counted again).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription
from crm_segment.projections import service


class RecordedInteraction(BaseModel):
    """One interaction: who, what, when, on which item, for how much."""

    type: str
    customer_external_id: str | None = None
    occurred_at: datetime
    sku: str | None = None
    category: str | None = None
    value_minor: int | None = None


class InteractionsRecorded(BaseModel):
    """``crm.profile.interaction.recorded``."""

    interactions: list[RecordedInteraction]


async def on_interactions_recorded(session: AsyncSession, envelope: Envelope) -> None:
    """Add the batch to the daily aggregates."""
    event = InteractionsRecorded.model_validate(envelope.data)
    await service.record_interactions(
        session,
        [service.Interaction(**i.model_dump()) for i in event.interactions],
        sent_at=envelope.time,
    )


SUBSCRIPTION = Subscription(
    subject="crm.profile.interaction.recorded",
    durable="segment-profile-interactions",
    handler=on_interactions_recorded,
)
