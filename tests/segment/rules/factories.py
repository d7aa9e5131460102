"""Fixture rows for rule and segment tests: customers and every projection a rule can read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import (
    Customer,
    CustomerConsent,
    CustomerLoyalty,
    CustomerScore,
    CustomerTag,
    InteractionDaily,
    Item,
    Order,
    OrderLine,
    Segment,
    SegmentMember,
)
from crm_segment.rules.compiler import compile_rule

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def customer(session: AsyncSession, external_id: str, **values: Any) -> Customer:
    """An active root customer (``status`` / ``root_external_id`` may be overridden)."""
    row = Customer(
        customer_external_id=external_id,
        customer_id=uuid.uuid4(),
        root_external_id=values.pop("root_external_id", external_id),
        status=values.pop("status", "active"),
        attributes=values.pop("attributes", {}),
        **values,
    )
    session.add(row)
    await session.flush()
    return row


async def score(session: AsyncSession, external_id: str, **values: Any) -> None:
    """The customer's ``customer_score`` row."""
    session.add(CustomerScore(customer_external_id=external_id, **values))
    await session.flush()


async def order(
    session: AsyncSession,
    order_id: str,
    root: str,
    placed_at: datetime,
    total: int = 1000,
    lines: Sequence[tuple[str, str | None]] = (),
    **values: Any,
) -> None:
    """An order of ``root`` with lines ``(sku, category)``."""
    session.add(
        Order(
            order_external_id=order_id,
            order_id=uuid.uuid4(),
            customer_external_id=values.pop("customer_external_id", root),
            root_external_id=root,
            placed_at=placed_at,
            currency="EUR",
            total_minor=total,
            **values,
        )
    )
    await session.flush()
    for n, (sku, category) in enumerate(lines):
        session.add(
            OrderLine(
                order_external_id=order_id,
                line_no=n,
                sku=sku,
                category=category,
                quantity=1,
                unit_price_minor=total,
            )
        )
    await session.flush()


async def item(session: AsyncSession, sku: str, launched_at: datetime | None) -> None:
    """A catalogue item."""
    session.add(Item(sku=sku, category=None, launched_at=launched_at, updated_at=NOW))
    await session.flush()


async def interactions(
    session: AsyncSession,
    root: str,
    day: date,
    kind: str,
    count: int,
    category: str = "",
    sku: str = "",
) -> None:
    """``count`` interactions of ``kind`` by ``root`` on ``day``."""
    session.add(
        InteractionDaily(
            customer_external_id=root,
            root_external_id=root,
            day=day,
            type=kind,
            category=category,
            sku=sku,
            count=count,
            last_at=datetime.combine(day, datetime.min.time(), UTC),
        )
    )
    await session.flush()


async def tag(session: AsyncSession, root: str, name: str, origin: str = "manual") -> None:
    """A tag on ``root``."""
    session.add(
        CustomerTag(
            customer_external_id=root,
            root_external_id=root,
            tag=name,
            origin=origin,
            changed_at=NOW,
        )
    )
    await session.flush()


async def consent(
    session: AsyncSession,
    root: str,
    channel: str,
    purpose: str,
    status: str,
    decided_at: datetime = NOW,
    arrived_as: str | None = None,
) -> None:
    """A consent decision of ``root`` (arrived with ``arrived_as`` for merged duplicates)."""
    session.add(
        CustomerConsent(
            customer_external_id=arrived_as or root,
            root_external_id=root,
            channel=channel,
            purpose=purpose,
            status=status,
            decided_at=decided_at,
        )
    )
    await session.flush()


async def loyalty(session: AsyncSession, root: str, **values: Any) -> None:
    """The loyalty row of ``root``."""
    session.add(CustomerLoyalty(customer_external_id=root, root_external_id=root, **values))
    await session.flush()


async def segment(
    session: AsyncSession, name: str, rule: dict[str, Any] | None = None, **values: Any
) -> Segment:
    """A saved segment (default rule: country eq DE)."""
    row = Segment(name=name, rule=rule or {"field": "country", "op": "eq", "value": "DE"}, **values)
    session.add(row)
    await session.flush()
    return row


async def member(
    session: AsyncSession, segment_id: uuid.UUID, root: str, entered_at: datetime = NOW
) -> None:
    """``root`` is a materialised member of the segment."""
    session.add(
        SegmentMember(segment_id=segment_id, customer_external_id=root, entered_at=entered_at)
    )
    await session.flush()


async def matching(session: AsyncSession, rule: dict[str, Any], now: datetime = NOW) -> list[str]:
    """External ids of the active customers matching ``rule`` at ``now``, sorted."""
    compiled = compile_rule(rule, now=now)
    stmt = (
        select(Customer.customer_external_id)
        .where(Customer.status == "active", compiled.predicate)
        .order_by(Customer.customer_external_id)
    )
    return list((await session.execute(stmt)).scalars())
