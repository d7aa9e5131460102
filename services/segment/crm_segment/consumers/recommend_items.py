"""Recommend's catalogue events (``crm.recommend.item.changed``) → ``item``.

Recommend declares the event ahead of publishing it; this consumer is built and tested against
that contract. Only the category and launch date are kept (rules on categories and on buying
a new product read them); the event's ``ce-time`` orders the changes.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription
from crm_segment.projections import service


class ItemChanged(BaseModel):
    """``crm.recommend.item.changed``."""

    sku: str
    category: str | None = None
    launched_at: datetime | None = None


async def on_item_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Take the item's fields unless newer ones are held."""
    event = ItemChanged.model_validate(envelope.data)
    await service.change_item(session, event.sku, event.category, event.launched_at, envelope.time)


SUBSCRIPTION = Subscription(
    subject="crm.recommend.item.changed",
    durable="segment-recommend-items",
    handler=on_item_changed,
    batch_transaction=True,
)
