"""SQL for orders, their lines, status history, refunds and request keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, column, func, insert, literal, select, tuple_, update, values
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.errors import InvalidCursor
from crm_common.repository import Page, RepositoryBase, decode_cursor, encode_cursor
from crm_profile.models import Order, OrderLine, OrderRequestKey, OrderStatusChange, Refund


class OrderRepository(RepositoryBase[Order]):
    """Orders by external id or customer, and the set-based updates refunds make."""

    model = Order

    async def by_external_id(self, external_id: str, *, for_update: bool = False) -> Order | None:
        """The order with this external id; ``for_update`` locks its row until commit."""
        stmt = select(Order).where(Order.external_id == external_id)
        if for_update:
            # populate_existing: after waiting for the lock, read what the other writer committed.
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return await self.get_one_or_none(stmt)

    async def by_id(self, order_id: uuid.UUID) -> Order | None:
        """The order with this internal id."""
        return await self.get_one_or_none(select(Order).where(Order.id == order_id))

    async def insert(self, values: dict[str, Any]) -> uuid.UUID | None:
        """Insert an order; ``None`` when its external id exists (a concurrent submission)."""
        stmt = (
            pg_insert(Order)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Order.external_id])
            .returning(Order.id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def add_lines(self, order_id: uuid.UUID, lines: Sequence[dict[str, Any]]) -> None:
        """Insert the lines of a new order, numbered from 1 in the order sent."""
        rows = [{"order_id": order_id, "line_no": n, **line} for n, line in enumerate(lines, 1)]
        await self.session.execute(insert(OrderLine), rows)

    async def lines(self, order_ids: Sequence[uuid.UUID]) -> list[OrderLine]:
        """Lines of these orders, by order and line number (freshly read)."""
        stmt = (
            select(OrderLine)
            .where(OrderLine.order_id.in_(order_ids))
            .order_by(OrderLine.order_id, OrderLine.line_no)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def history(self, order_ids: Sequence[uuid.UUID]) -> list[OrderStatusChange]:
        """Status changes of these orders, oldest first."""
        stmt = (
            select(OrderStatusChange)
            .where(OrderStatusChange.order_id.in_(order_ids))
            .order_by(OrderStatusChange.order_id, OrderStatusChange.id)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def add_status_change(
        self, order_id: uuid.UUID, status: str, changed_at: datetime
    ) -> None:
        """Append one row to an order's status history."""
        await self.session.execute(
            insert(OrderStatusChange).values(
                order_id=order_id, status=status, changed_at=changed_at
            )
        )

    async def ever_had_status(self, order_id: uuid.UUID, status: str) -> bool:
        """True when the order went through ``status`` at some point."""
        stmt = select(
            select(OrderStatusChange.id)
            .where(OrderStatusChange.order_id == order_id, OrderStatusChange.status == status)
            .exists()
        )
        return bool((await self.session.execute(stmt)).scalar())

    async def set_status(self, order: Order, status: str) -> None:
        """Move ``order`` to ``status`` and reload it (``updated_at`` is set by the database)."""
        await self.session.execute(
            update(Order)
            .where(Order.id == order.id)
            .values(status=status, updated_at=func.now())
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(order)

    async def page_for_customers(
        self, customer_ids: Sequence[uuid.UUID], *, cursor: str | None, limit: int
    ) -> Page[Order]:
        """Orders of these customers, newest first (keyset on ``placed_at DESC, id DESC``)."""
        stmt = select(Order).where(Order.customer_id.in_(customer_ids))
        if cursor is not None:
            placed_at, order_id = _descending_cursor(cursor)
            stmt = stmt.where(
                tuple_(Order.placed_at, Order.id)
                < tuple_(
                    literal(placed_at, type_=Order.placed_at.type),
                    literal(order_id, type_=Order.id.type),
                )
            )
        stmt = stmt.order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit + 1)
        rows = await self.get_all(stmt)
        if len(rows) <= limit:
            return Page(rows, None)
        rows = rows[:limit]
        return Page(rows, encode_cursor([rows[-1].placed_at, rows[-1].id]))

    async def request_key(self, key: str) -> OrderRequestKey | None:
        """The order request that used ``key``, if any."""
        stmt = select(OrderRequestKey).where(OrderRequestKey.key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def save_request_key(self, key: str, order_id: uuid.UUID, content_hash: str) -> bool:
        """Remember ``key``; ``False`` when another request holds it already."""
        stmt = (
            pg_insert(OrderRequestKey)
            .values(key=key, order_id=order_id, content_hash=content_hash)
            .on_conflict_do_nothing(index_elements=[OrderRequestKey.key])
            .returning(OrderRequestKey.key)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none() is not None

    async def refund_by_key(self, key: str) -> Refund | None:
        """The refund made under ``Idempotency-Key`` ``key``."""
        return (
            await self.session.execute(select(Refund).where(Refund.idempotency_key == key))
        ).scalar_one_or_none()

    async def insert_refund(self, values: dict[str, Any]) -> Refund | None:
        """Insert a refund; ``None`` when its idempotency key is taken (a concurrent request)."""
        stmt = (
            pg_insert(Refund)
            .values(id=uuid.uuid4(), **values)
            .on_conflict_do_nothing(index_elements=[Refund.idempotency_key])
            .returning(Refund.id)
        )
        refund_id = (await self.session.execute(stmt)).scalar_one_or_none()
        if refund_id is None:
            return None
        return (
            await self.session.execute(select(Refund).where(Refund.id == refund_id))
        ).scalar_one()

    async def refund_units(self, order_id: uuid.UUID, units: dict[int, int]) -> int:
        """Add ``units`` (line number → quantity) to the lines' refunded quantities, in one
        statement that never lets a line go past its quantity; the number of lines updated."""
        if not units:
            return 0
        refunds = values(column("line_no", Integer), column("qty", Integer), name="refunds").data(
            list(units.items())
        )
        stmt = (
            update(OrderLine)
            .where(
                OrderLine.order_id == order_id,
                OrderLine.line_no == refunds.c.line_no,
                OrderLine.refunded_quantity + refunds.c.qty <= OrderLine.quantity,
            )
            .values(refunded_quantity=OrderLine.refunded_quantity + refunds.c.qty)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).rowcount  # type: ignore[attr-defined,no-any-return]

    async def add_refunded(self, order: Order, amount: int) -> bool:
        """Add ``amount`` to the order's refunded total unless that would pass its total."""
        stmt = (
            update(Order)
            .where(Order.id == order.id, Order.refunded_minor + amount <= Order.total_minor)
            .values(refunded_minor=Order.refunded_minor + amount, updated_at=func.now())
            .returning(Order.id)
            .execution_options(synchronize_session=False)
        )
        updated = (await self.session.execute(stmt)).first() is not None
        await self.session.refresh(order)
        return updated


def _descending_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """``(placed_at, id)`` of the last order of the previous page."""
    raw_time, raw_id = decode_cursor(cursor, 2)
    try:
        placed_at, order_id = datetime.fromisoformat(str(raw_time)), uuid.UUID(str(raw_id))
    except ValueError as exc:
        raise InvalidCursor() from exc
    if placed_at.tzinfo is None:
        raise InvalidCursor()
    return placed_at, order_id
