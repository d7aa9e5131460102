"""Rows the RFM, scores and KPI tests start from, written straight into the projections."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import Customer, Order

_seq = iter(range(1, 10**9))


async def add_customer(
    session: AsyncSession, external_id: str, *, merged_into: str | None = None
) -> Customer:
    """An active customer, or a duplicate merged into ``merged_into``."""
    row = Customer(
        customer_external_id=external_id,
        customer_id=uuid.uuid4(),
        status="merged" if merged_into else "active",
        merged_into_external_id=merged_into,
        root_external_id=merged_into or external_id,
    )
    session.add(row)
    await session.flush()
    return row


async def add_order(
    session: AsyncSession,
    customer: str,
    placed_at: datetime,
    total_minor: int,
    *,
    root: str | None = None,
    refunded_minor: int = 0,
    fully_refunded: bool = False,
    status: str = "paid",
) -> Order:
    """An order of ``customer`` counting for ``root`` (default: the customer itself)."""
    row = Order(
        order_external_id=f"o-{next(_seq)}",
        order_id=uuid.uuid4(),
        customer_external_id=customer,
        root_external_id=root or customer,
        placed_at=placed_at,
        currency="EUR",
        total_minor=total_minor,
        refunded_minor=refunded_minor,
        fully_refunded=fully_refunded,
        status=status,
    )
    session.add(row)
    await session.flush()
    return row
