"""SQL of the event-fed projections: orders, behaviour, consents, manual tags, loyalty, items.

Every write is set-based (one statement per table, whatever the batch size), idempotent, and
guarded by the time of the fact it carries, so a late, older event never overwrites a newer one. A customer's ``root_external_id`` is read from
``segment.customer`` in the same statement (the customer itself when segment has no row yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Text,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from crm_segment.customers.tombstones import erased_since_sql
from crm_segment.evaluation.queue import enqueue_select
from crm_segment.models import (
    Customer,
    CustomerConsent,
    CustomerLoyalty,
    CustomerTag,
    InteractionDaily,
    Item,
    Order,
    OrderLine,
)


def root_of(external_id: Any) -> ColumnElement[str]:
    """The current root of ``external_id`` (a value or a column): itself when segment has no row."""
    current = (
        select(Customer.root_external_id)
        .where(Customer.customer_external_id == external_id)
        .scalar_subquery()
    )
    return func.coalesce(current, external_id)


class ProjectionRepository:
    """Writes of the projections fed by profile, loyalty and recommend events."""

    def __init__(self, session: AsyncSession) -> None:
        """Bind to the consumer's session."""
        self.session = session

    # --- orders --------------------------------------------------------------------------

    async def insert_order(
        self, values: dict[str, Any], lines: Sequence[dict[str, Any]]
    ) -> str | None:
        """Insert a placed order and its lines; its root, or ``None`` when it was known already."""
        stmt = (
            pg_insert(Order)
            .values(**values, root_external_id=root_of(values["customer_external_id"]))
            .on_conflict_do_nothing(index_elements=[Order.order_external_id])
            .returning(Order.root_external_id)
        )
        root = (await self.session.execute(stmt)).scalar_one_or_none()
        if root is not None and lines:
            await self.session.execute(
                pg_insert(OrderLine).values(list(lines)).on_conflict_do_nothing()
            )
        return root

    async def order_exists(self, order_external_id: str) -> bool:
        """True when the order was projected."""
        stmt = select(exists().where(Order.order_external_id == order_external_id))
        return bool((await self.session.execute(stmt)).scalar_one())

    async def set_order_status(
        self, order_external_id: str, status: str, at: datetime
    ) -> str | None:
        """Apply a status unless a newer one was; the order's root when applied."""
        stmt = (
            update(Order)
            .where(
                Order.order_external_id == order_external_id,
                or_(Order.status_changed_at.is_(None), Order.status_changed_at < at),
            )
            .values(status=status, status_changed_at=at)
            .returning(Order.root_external_id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def refund_order(
        self, order_external_id: str, refunded_total_minor: int, fully_refunded: bool
    ) -> str | None:
        """Take the cumulative refunded amount (refunds only grow, so the largest total wins)."""
        stmt = (
            update(Order)
            .where(Order.order_external_id == order_external_id)
            .values(
                refunded_minor=func.greatest(Order.refunded_minor, refunded_total_minor),
                fully_refunded=Order.fully_refunded | fully_refunded,
            )
            .returning(Order.root_external_id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    # --- behaviour -----------------------------------------------------------------------

    async def add_interactions(
        self, rows: Sequence[tuple[str, date, str, str, str, int, datetime]], sent_at: datetime
    ) -> list[str]:
        """Fold a batch into the daily aggregates in one statement; the distinct roots touched.

        ``rows`` are ``(customer, day, type, category, sku, value_minor, occurred_at)``; they are
        passed as seven arrays, grouped in SQL, and upserted together, except those of customers
        erased at or after ``sent_at`` (the batch's ``ce-time``: it arrives late for them).
        """
        if not rows:
            return []
        columns = list(zip(*rows, strict=True))
        arrays: list[tuple[Sequence[Any], TypeEngine[Any]]] = [
            (columns[0], Text()),
            (columns[1], Date()),
            (columns[2], Text()),
            (columns[3], Text()),
            (columns[4], Text()),
            (columns[5], BigInteger()),
            (columns[6], DateTime(timezone=True)),
        ]
        names = ["customer", "day", "type", "category", "sku", "value_minor", "occurred_at"]
        batch = (
            func.unnest(*[literal(list(values), ARRAY(kind)) for values, kind in arrays])
            .table_valued(*[column(n) for n in names])
            .render_derived(name="batch")
        )
        c = batch.c
        grouped = (
            select(
                c.customer,
                c.day,
                c.type,
                c.category,
                c.sku,
                root_of(c.customer),
                func.count(),
                func.sum(c.value_minor),
                func.max(c.occurred_at),
            )
            .where(~erased_since_sql(c.customer, sent_at))
            .group_by(c.customer, c.day, c.type, c.category, c.sku)
        )
        stmt = pg_insert(InteractionDaily).from_select(
            [
                "customer_external_id",
                "day",
                "type",
                "category",
                "sku",
                "root_external_id",
                "count",
                "value_minor",
                "last_at",
            ],
            grouped,
        )
        t = InteractionDaily
        upsert = stmt.on_conflict_do_update(
            index_elements=[t.customer_external_id, t.day, t.type, t.category, t.sku],
            set_={
                "root_external_id": stmt.excluded.root_external_id,
                "count": t.count + stmt.excluded.count,
                "value_minor": t.value_minor + stmt.excluded.value_minor,
                "last_at": func.greatest(t.last_at, stmt.excluded.last_at),
            },
        ).returning(t.root_external_id)
        return sorted(set((await self.session.execute(upsert)).scalars()))

    # --- consents and manual tags ---------------------------------------------------------

    async def upsert_consent(
        self, external_id: str, channel: str, purpose: str, status: str, decided_at: datetime
    ) -> str | None:
        """Keep the latest decision for a channel and purpose; the root when it changed."""
        stmt = pg_insert(CustomerConsent).values(
            customer_external_id=external_id,
            channel=channel,
            purpose=purpose,
            root_external_id=root_of(external_id),
            status=status,
            decided_at=decided_at,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[
                CustomerConsent.customer_external_id,
                CustomerConsent.channel,
                CustomerConsent.purpose,
            ],
            set_={"status": stmt.excluded.status, "decided_at": stmt.excluded.decided_at},
            where=CustomerConsent.decided_at < stmt.excluded.decided_at,
        ).returning(CustomerConsent.root_external_id)
        return (await self.session.execute(upsert)).scalar_one_or_none()

    async def add_tag(self, external_id: str, tag: str, origin: str, at: datetime) -> str | None:
        """Put a tag on the customer (or refresh its time); the root when something changed."""
        stmt = pg_insert(CustomerTag).values(
            customer_external_id=external_id,
            tag=tag,
            origin=origin,
            root_external_id=root_of(external_id),
            changed_at=at,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[CustomerTag.customer_external_id, CustomerTag.tag, CustomerTag.origin],
            set_={"changed_at": stmt.excluded.changed_at},
            where=CustomerTag.changed_at < stmt.excluded.changed_at,
        ).returning(CustomerTag.root_external_id)
        return (await self.session.execute(upsert)).scalar_one_or_none()

    async def remove_tag(self, external_id: str, tag: str, origin: str, at: datetime) -> str | None:
        """Take a tag off unless it was put on after ``at``; the root when removed."""
        stmt = (
            sa_delete(CustomerTag)
            .where(
                CustomerTag.customer_external_id == external_id,
                CustomerTag.tag == tag,
                CustomerTag.origin == origin,
                CustomerTag.changed_at <= at,
            )
            .returning(CustomerTag.root_external_id)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    # --- loyalty -------------------------------------------------------------------------

    async def upsert_loyalty(
        self, external_id: str, values: dict[str, Any], changed_at_column: str
    ) -> str | None:
        """Take tier or membership fields unless newer ones are held; the root when applied.

        ``changed_at_column`` (``tier_changed_at`` or ``membership_changed_at``) orders the
        events of one kind; the two kinds never overwrite each other's columns.
        """
        stmt = pg_insert(CustomerLoyalty).values(
            customer_external_id=external_id, root_external_id=root_of(external_id), **values
        )
        current = getattr(CustomerLoyalty, changed_at_column)
        upsert = stmt.on_conflict_do_update(
            index_elements=[CustomerLoyalty.customer_external_id],
            set_={name: stmt.excluded[name] for name in values},
            where=or_(current.is_(None), current < stmt.excluded[changed_at_column]),
        ).returning(CustomerLoyalty.root_external_id)
        return (await self.session.execute(upsert)).scalar_one_or_none()

    # --- catalogue -----------------------------------------------------------------------

    async def upsert_item(
        self, sku: str, category: str | None, launched_at: datetime | None, at: datetime
    ) -> tuple[bool, bool]:
        """Take an item's fields unless newer ones are held.

        Returns ``(applied, segmentation_changed)``: whether the row was written, and whether
        its category or launch date differ from before (only then do buyers need re-evaluation).
        """
        previous = (
            await self.session.execute(
                select(Item.category, Item.launched_at).where(Item.sku == sku).with_for_update()
            )
        ).first()
        stmt = pg_insert(Item).values(
            sku=sku, category=category, launched_at=launched_at, updated_at=at
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[Item.sku],
            set_={
                "category": stmt.excluded.category,
                "launched_at": stmt.excluded.launched_at,
                "updated_at": stmt.excluded.updated_at,
            },
            where=Item.updated_at < stmt.excluded.updated_at,
        ).returning(Item.sku)
        applied = (await self.session.execute(upsert)).first() is not None
        changed = applied and (previous is None or tuple(previous) != (category, launched_at))
        return applied, changed

    async def enqueue_buyers(self, sku: str) -> None:
        """Queue every (root) customer who ever ordered ``sku``, in one statement."""
        buyers = (
            select(
                Order.root_external_id,
                func.now(),
                literal("input"),
            )
            .join(OrderLine, OrderLine.order_external_id == Order.order_external_id)
            .where(OrderLine.sku == sku)
            .distinct()
        )
        await self.session.execute(enqueue_select(buyers))
