"""Rows written through the models, as the intake and merge APIs would write them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_profile.models import (
    BehaviourEvent,
    Customer,
    Merge,
    Order,
    OrderStatusChange,
    Refund,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """``T0`` plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


async def customer_row(session: AsyncSession, external_id: str) -> Customer:
    """The stored customer row, fresh."""
    stmt = (
        select(Customer)
        .where(Customer.external_id == external_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one()


async def merge(
    session: AsyncSession, survivor: str, duplicate: str, *, when: datetime | None = None
) -> uuid.UUID:
    """Fold ``duplicate`` into ``survivor`` as the merge API does (row kept, status merged)."""
    kept, dup = await customer_row(session, survivor), await customer_row(session, duplicate)
    dup.status, dup.merged_into_id = "merged", kept.id
    record = Merge(
        survivor_id=kept.id,
        duplicate_id=dup.id,
        rule="manual",
        merged_by="key:test",
        filled_fields={},
    )
    if when is not None:
        record.merged_at = when
    session.add(record)
    await session.flush()
    return record.id


async def unmerge(session: AsyncSession, merge_id: uuid.UUID, *, when: datetime) -> None:
    """Undo a merge as the undo API does."""
    record = await session.get(Merge, merge_id)
    assert record is not None
    dup = await session.get(Customer, record.duplicate_id)
    assert dup is not None
    dup.status, dup.merged_into_id = "active", None
    record.undone_at, record.undone_by = when, "key:test"
    await session.flush()


async def add_event(
    session: AsyncSession, customer: Customer, when: datetime, **fields: Any
) -> str:
    """A behaviour event of ``customer`` that occurred at ``when``."""
    event_id = fields.pop("event_id", f"ev-{uuid.uuid4()}")
    values = {"type": "product_view", "sku": "SKU-1", "properties": {}} | fields
    session.add(
        BehaviourEvent(
            event_id=event_id,
            customer_id=customer.id,
            customer_external_id=customer.external_id,
            occurred_at=when,
            **values,
        )
    )
    await session.flush()
    return event_id


async def add_order(
    session: AsyncSession, customer: Customer, when: datetime, total_minor: int = 1000
) -> Order:
    """An order of ``customer`` placed at ``when``."""
    order = Order(
        external_id=f"o-{uuid.uuid4()}",
        customer_id=customer.id,
        customer_external_id=customer.external_id,
        placed_at=when,
        currency="EUR",
        subtotal_minor=total_minor,
        discount_minor=0,
        shipping_minor=0,
        total_minor=total_minor,
        channel="web",
        content_hash="x",
    )
    session.add(order)
    await session.flush()
    return order


async def add_status(session: AsyncSession, order: Order, status: str, when: datetime) -> int:
    """A status change of ``order``."""
    change = OrderStatusChange(order_id=order.id, status=status, changed_at=when)
    session.add(change)
    await session.flush()
    return change.id


async def add_refund(
    session: AsyncSession, order: Order, amount_minor: int, when: datetime
) -> uuid.UUID:
    """A refund of ``order``."""
    refund = Refund(order_id=order.id, amount_minor=amount_minor, lines=[], created_at=when)
    session.add(refund)
    await session.flush()
    return refund.id
