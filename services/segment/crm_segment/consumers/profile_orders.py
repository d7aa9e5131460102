"""Profile's order events (``crm.profile.order.>``) → segment's ``order`` and ``order_line``.

A ``placed`` event inserts the order once (its external id is the key); a status change is
applied only when its ``ce-time`` is newer than the last one applied; a refund records the
cumulative refunded amount. A status change or refund of an order not placed here yet is
retried later (``OrderNotProjectedYet`` is a transient error, so the message is ``nak``-ed),
unless its customer was erased after the event was sent: then every event about the customer
is skipped (``crm_segment.customers.tombstones``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, Subscription, by_subject
from crm_segment.projections import service

SUBJECT = "crm.profile.order.>"


class PlacedLine(BaseModel):
    """One line of a placed order."""

    sku: str
    quantity: int
    unit_price_minor: int
    category: str | None = None


class OrderPlaced(BaseModel):
    """``crm.profile.order.placed``: the fields segmentation uses."""

    order_id: uuid.UUID
    order_external_id: str
    customer_external_id: str
    placed_at: datetime
    currency: str
    lines: list[PlacedLine]
    discount_minor: int = 0
    shipping_minor: int = 0
    total_minor: int
    channel: str | None = None
    coupon_codes: list[str] = []
    points_redeemed: int = 0


class OrderStatusChanged(BaseModel):
    """``crm.profile.order.status_changed``."""

    order_external_id: str
    customer_external_id: str | None = None
    status: str


class OrderRefunded(BaseModel):
    """``crm.profile.order.refunded``: the order's cumulative refunds."""

    order_external_id: str
    customer_external_id: str | None = None
    refunded_total_minor: int
    fully_refunded: bool


async def on_order_placed(session: AsyncSession, envelope: Envelope) -> None:
    """Insert the order and its lines (nothing happens when it is known already)."""
    event = OrderPlaced.model_validate(envelope.data)
    order = event.model_dump(exclude={"lines"})
    order["status"] = "placed"
    order["status_changed_at"] = envelope.time
    await service.place_order(
        session, order, [line.model_dump() for line in event.lines], sent_at=envelope.time
    )


async def on_order_status_changed(session: AsyncSession, envelope: Envelope) -> None:
    """Apply the new status unless a newer one was applied."""
    event = OrderStatusChanged.model_validate(envelope.data)
    await service.change_order_status(
        session,
        event.order_external_id,
        event.status,
        envelope.time,
        customer_external_id=event.customer_external_id,
    )


async def on_order_refunded(session: AsyncSession, envelope: Envelope) -> None:
    """Record the refunded total and whether nothing paid is left."""
    event = OrderRefunded.model_validate(envelope.data)
    await service.refund_order(
        session,
        event.order_external_id,
        event.refunded_total_minor,
        event.fully_refunded,
        sent_at=envelope.time,
        customer_external_id=event.customer_external_id,
    )


HANDLERS = {
    "crm.profile.order.placed": on_order_placed,
    "crm.profile.order.status_changed": on_order_status_changed,
    "crm.profile.order.refunded": on_order_refunded,
}


#: An order event segment has no use for is acked and skipped.
on_profile_order = by_subject(HANDLERS)


SUBSCRIPTION = Subscription(
    subject=SUBJECT,
    durable="segment-profile-orders",
    handler=on_profile_order,
    batch_transaction=True,
)
