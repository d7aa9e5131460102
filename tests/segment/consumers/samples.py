"""Producer-built sample payloads and read helpers shared by the projection tests.

Payloads are the producers' own models (profile, loyalty, recommend), so a consumer test also
proves that segment's narrow models read what the producers publish.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_loyalty.events import MembershipChangedV1, TierChangedV1
from crm_profile.events import (
    ConsentChangedV1,
    InteractionsRecordedV1,
    InteractionV1,
    OrderLineV1,
    OrderPlacedV1,
    OrderRefundedV1,
    OrderStatusChangedV1,
    TagChangedV1,
)
from crm_recommend.events import ItemChangedV1
from crm_segment.models import EvaluationQueue
from tests.segment.conftest import at


def placed(
    order: str, customer: str, *lines: tuple[str, int, int, str | None], **fields: Any
) -> OrderPlacedV1:
    """Profile's payload of ``order`` placed by ``customer`` with ``(sku, qty, price, category)``."""
    items = lines or (("SKU-1", 2, 1500, "shoes"),)
    subtotal = sum(q * p for _, q, p, _ in items)
    values: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "order_external_id": order,
        "customer_external_id": customer,
        "placed_at": at(0),
        "currency": "EUR",
        "lines": [
            OrderLineV1(sku=s, quantity=q, unit_price_minor=p, category=c) for s, q, p, c in items
        ],
        "subtotal_minor": subtotal,
        "discount_minor": 0,
        "shipping_minor": 0,
        "total_minor": subtotal,
        "channel": "web",
        "coupon_codes": [],
        "points_redeemed": 0,
    }
    values.update(fields)
    return OrderPlacedV1(**values)


def status(order: str, customer: str, new: str, previous: str = "placed") -> OrderStatusChangedV1:
    """Profile's payload of ``order`` moving to ``new``."""
    return OrderStatusChangedV1(
        order_external_id=order,
        customer_external_id=customer,
        status=new,
        previous_status=previous,
        changed_at=at(1),
    )


def refunded(order: str, customer: str, total: int, so_far: int, full: bool) -> OrderRefundedV1:
    """Profile's payload of a refund bringing ``order``'s refunds to ``so_far``."""
    return OrderRefundedV1(
        refund_id=str(uuid.uuid4()),
        order_external_id=order,
        customer_external_id=customer,
        currency="EUR",
        amount_minor=so_far,
        refunded_total_minor=so_far,
        total_minor=total,
        fully_refunded=full,
        lines=[],
        refunded_at=at(2),
    )


def interaction(
    customer: str | None,
    type_: str,
    occurred_at: datetime,
    sku: str | None = None,
    category: str | None = None,
    value_minor: int | None = None,
) -> InteractionV1:
    """One of profile's behaviour events."""
    return InteractionV1(
        event_id=str(uuid.uuid4()),
        type=type_,
        customer_external_id=customer,
        anonymous_id=None if customer else "device-1",
        occurred_at=occurred_at,
        sku=sku,
        category=category,
        value_minor=value_minor,
    )


def batch(*interactions: InteractionV1) -> InteractionsRecordedV1:
    """Profile's batch message."""
    return InteractionsRecordedV1(interactions=list(interactions))


def consent(
    customer: str, status_: str, decided_at: datetime, channel: str = "email"
) -> ConsentChangedV1:
    """Profile's consent decision."""
    return ConsentChangedV1(
        customer_id=str(uuid.uuid4()),
        customer_external_id=customer,
        channel=channel,
        purpose="marketing",
        status=status_,
        source="checkout",
        decided_at=decided_at,
    )


def tag(customer: str, name: str, change: str) -> TagChangedV1:
    """Profile's manual tag change."""
    return TagChangedV1(
        customer_external_id=customer,
        tag=name,
        change=change,
        origin="manual",
    )


def tier(customer: str, name: str, changed_at: datetime) -> TierChangedV1:
    """Loyalty's tier change."""
    return TierChangedV1(
        customer_external_id=customer, tier=name, previous_tier=None, changed_at=changed_at
    )


def membership(
    customer: str, status_: str, changed_at: datetime, expires_at: datetime | None = None
) -> MembershipChangedV1:
    """Loyalty's membership change."""
    return MembershipChangedV1(
        customer_external_id=customer,
        plan="plus",
        status=status_,
        expires_at=expires_at,
        changed_at=changed_at,
    )


def item(sku: str, category: str | None, launched_at: datetime | None) -> ItemChangedV1:
    """Recommend's catalogue item."""
    return ItemChangedV1(sku=sku, category=category, launched_at=launched_at, active=True)


async def queued(session: AsyncSession) -> dict[str, str]:
    """Customers waiting in the evaluation queue, with the reason."""
    rows = await session.execute(
        select(EvaluationQueue.customer_external_id, EvaluationQueue.reason)
    )
    return {r.customer_external_id: r.reason for r in rows}


async def fresh(session: AsyncSession, model: Any, *where: Any) -> list[Any]:
    """Rows of ``model`` matching ``where``, reloaded from the database."""
    stmt = select(model).where(*where).execution_options(populate_existing=True)
    return list((await session.execute(stmt)).scalars())
