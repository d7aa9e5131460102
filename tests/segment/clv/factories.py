"""Rows for the CLV, value-score and cluster tests, inserted straight into the projections."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import Customer, InteractionDaily, Order, OrderLine

_orders = itertools.count()


async def add_customer(
    session: AsyncSession,
    external_id: str,
    *,
    status: str = "active",
    root: str | None = None,
    registered_at: datetime | None = None,
) -> None:
    """A projected customer (its own root unless merged into ``root``)."""
    await session.execute(
        insert(Customer).values(
            customer_external_id=external_id,
            customer_id=uuid.uuid4(),
            status=status,
            root_external_id=root or external_id,
            registered_at=registered_at,
        )
    )


def order_row(
    customer: str,
    placed_at: datetime,
    total_minor: int,
    *,
    root: str | None = None,
    status: str = "paid",
    refunded_minor: int = 0,
    fully_refunded: bool = False,
    order_id: str | None = None,
) -> dict[str, Any]:
    """Values of one projected order."""
    return {
        "order_external_id": order_id or f"o-{next(_orders)}",
        "order_id": uuid.uuid4(),
        "customer_external_id": customer,
        "root_external_id": root or customer,
        "placed_at": placed_at,
        "currency": "EUR",
        "total_minor": total_minor,
        "refunded_minor": refunded_minor,
        "fully_refunded": fully_refunded,
        "status": status,
    }


async def add_orders(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert projected orders (one statement)."""
    if rows:
        await session.execute(insert(Order), rows)


async def add_order(
    session: AsyncSession, customer: str, placed_at: datetime, total_minor: int, **kw: Any
) -> str:
    """One projected order; its external id."""
    row = order_row(customer, placed_at, total_minor, **kw)
    await add_orders(session, [row])
    return str(row["order_external_id"])


async def add_lines(session: AsyncSession, order_id: str, categories: list[str]) -> None:
    """One line per category on ``order_id``."""
    await session.execute(
        insert(OrderLine),
        [
            {
                "order_external_id": order_id,
                "line_no": i + 1,
                "sku": f"sku-{category}",
                "category": category,
                "quantity": 1,
                "unit_price_minor": 100,
            }
            for i, category in enumerate(categories)
        ],
    )


def interaction_row(
    customer: str, day: date, type_: str, count: int, *, root: str | None = None, category: str = ""
) -> dict[str, Any]:
    """Values of one behaviour aggregate row."""
    return {
        "customer_external_id": customer,
        "root_external_id": root or customer,
        "day": day,
        "type": type_,
        "category": category,
        "sku": "",
        "count": count,
        "last_at": datetime.combine(day, time(12), tzinfo=UTC),
    }


async def add_interactions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert behaviour aggregate rows (one statement)."""
    if rows:
        await session.execute(insert(InteractionDaily), rows)
