"""SQL of segment's customer projection (the only module that writes it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import LargeBinary, Table, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.repository import RepositoryBase
from crm_segment.models import (
    Customer,
    CustomerConsent,
    CustomerLoyalty,
    CustomerScore,
    CustomerTag,
    ErasedCustomer,
    ErasedExternalId,
    EvaluationQueue,
    InteractionDaily,
    Order,
    OrderLine,
    Segment,
    SegmentMember,
    dead_letter_table,
)

#: Tables whose rows belong to one customer by ``customer_external_id`` and hold nothing else
#: worth keeping once that customer is erased (orders, memberships and the queue handled apart).
KEYED_BY_CUSTOMER: list[Table] = [
    InteractionDaily.__table__,  # type: ignore[list-item]
    CustomerConsent.__table__,  # type: ignore[list-item]
    CustomerTag.__table__,  # type: ignore[list-item]
    CustomerLoyalty.__table__,  # type: ignore[list-item]
    CustomerScore.__table__,  # type: ignore[list-item]
    EvaluationQueue.__table__,  # type: ignore[list-item]
]


def _escape_like(value: bytes) -> bytes:
    """``value`` as a literal inside a ``LIKE`` pattern (backslash is the escape character)."""
    return value.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")


class CustomerRepository(RepositoryBase[Customer]):
    """Projection rows, erased-customer tombstones and dead letters about customers."""

    model = Customer

    async def any_erased(self, customer_ids: Sequence[uuid.UUID]) -> bool:
        """True when one of ``customer_ids`` was erased in profile."""
        stmt = select(ErasedCustomer.customer_id).where(
            ErasedCustomer.customer_id.in_(customer_ids)
        )
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def upsert_fields(
        self, external_id: str, customer_id: uuid.UUID, values: dict[str, Any], at: datetime
    ) -> str | None:
        """Insert or overwrite the profile fields, unless the row holds newer ones than ``at``.

        Returns the customer's root when the row was written, ``None`` when it was newer.
        """
        stmt = pg_insert(Customer).values(
            customer_external_id=external_id,
            customer_id=customer_id,
            root_external_id=external_id,
            status="active",
            updated_at=at,
            **values,
        )
        changed = {name: stmt.excluded[name] for name in (*values, "customer_id", "updated_at")}
        written = await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Customer.customer_external_id],
                set_={**changed, "projected_at": func.now()},
                where=or_(Customer.updated_at.is_(None), Customer.updated_at <= at),
            ).returning(Customer.root_external_id)
        )
        return written.scalar_one_or_none()

    async def set_status(
        self,
        external_id: str,
        customer_id: uuid.UUID,
        status: str,
        merged_into: str | None,
        at: datetime,
    ) -> None:
        """Set merge status, unless a newer merge or undo was applied already."""
        stmt = pg_insert(Customer).values(
            customer_external_id=external_id,
            customer_id=customer_id,
            root_external_id=external_id,
            status=status,
            merged_into_external_id=merged_into,
            status_changed_at=at,
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Customer.customer_external_id],
                set_={
                    "status": status,
                    "merged_into_external_id": merged_into,
                    "status_changed_at": at,
                    "projected_at": func.now(),
                },
                where=or_(Customer.status_changed_at.is_(None), Customer.status_changed_at <= at),
            )
        )

    async def delete(
        self, external_ids: Sequence[str], customer_ids: Sequence[uuid.UUID]
    ) -> list[tuple[uuid.UUID, str]]:
        """Delete the rows of these customers; ``(internal id, external id)`` of those deleted."""
        result = await self.session.execute(
            delete(Customer)
            .where(
                or_(
                    Customer.customer_external_id.in_(external_ids),
                    Customer.customer_id.in_(customer_ids),
                )
            )
            .returning(Customer.customer_id, Customer.customer_external_id)
        )
        return [(row.customer_id, row.customer_external_id) for row in result]

    async def tombstone(self, customer_ids: Sequence[uuid.UUID], at: datetime) -> None:
        """Remember that these customers were erased."""
        if customer_ids:
            await self.session.execute(
                pg_insert(ErasedCustomer)
                .values([{"customer_id": i, "erased_at": at} for i in customer_ids])
                .on_conflict_do_nothing()
            )

    async def tombstone_external_ids(self, digests: Sequence[bytes], at: datetime) -> None:
        """Remember these external-id digests as erased at ``at`` (a later erasure wins)."""
        if not digests:
            return
        stmt = pg_insert(ErasedExternalId).values(
            [{"digest": d, "erased_at": at} for d in sorted(set(digests))]
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[ErasedExternalId.digest],
                set_={
                    "erased_at": func.greatest(ErasedExternalId.erased_at, stmt.excluded.erased_at)
                },
            )
        )

    async def tombstoned_digests(self, digests: Sequence[bytes], at: datetime) -> set[bytes]:
        """Which of ``digests`` were erased at or after ``at``."""
        if not digests:
            return set()
        stmt = select(ErasedExternalId.digest).where(
            ErasedExternalId.digest.in_(sorted(set(digests))), ErasedExternalId.erased_at >= at
        )
        return set((await self.session.execute(stmt)).scalars())

    async def by_external_ids(self, external_ids: Sequence[str]) -> list[Customer]:
        """Projection rows of these external ids."""
        return await self.get_all(
            select(Customer)
            .where(Customer.customer_external_id.in_(external_ids))
            .order_by(Customer.customer_external_id)
        )

    async def delete_dead_letters(self, external_ids: Sequence[str]) -> int:
        """Delete dead letters naming these customers (they must not be replayed after erasure)."""
        t = dead_letter_table
        naming = [t.c.headers["ce-subject"].astext.in_(external_ids)]
        for i, external_id in enumerate(external_ids):
            pattern = b"%" + _escape_like(orjson.dumps(external_id)) + b"%"
            naming.append(t.c.body.like(bindparam(f"needle_{i}", pattern, type_=LargeBinary)))
        result = await self.session.execute(delete(t).where(or_(*naming)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def roots_outside(self, external_ids: Sequence[str]) -> list[str]:
        """Roots of these customers that are not among them (survivors that stay)."""
        stmt = (
            select(Customer.root_external_id)
            .where(
                Customer.customer_external_id.in_(external_ids),
                Customer.root_external_id.not_in(external_ids),
            )
            .distinct()
        )
        return list((await self.session.execute(stmt)).scalars())

    async def delete_projections(self, external_ids: Sequence[str]) -> None:
        """Delete every projection, score, membership and queue row of these customers."""
        orders = select(Order.order_external_id).where(Order.customer_external_id.in_(external_ids))
        await self.session.execute(delete(OrderLine).where(OrderLine.order_external_id.in_(orders)))
        await self.session.execute(
            delete(Order).where(Order.customer_external_id.in_(external_ids))
        )
        for table in KEYED_BY_CUSTOMER:
            await self.session.execute(
                delete(table).where(table.c.customer_external_id.in_(external_ids))
            )
        await self.delete_memberships(external_ids)

    async def delete_memberships(self, external_ids: Sequence[str]) -> None:
        """Remove these customers from every segment and keep the segments' counts right.

        No exit event is published: it would carry the erased customer's id, which must not
        leave this transaction (consumers of memberships learn of the erasure from profile).
        """
        gone = (
            delete(SegmentMember)
            .where(SegmentMember.customer_external_id.in_(external_ids))
            .returning(SegmentMember.segment_id)
            .cte("gone")
        )
        counts = (
            select(gone.c.segment_id, func.count().label("n"))
            .group_by(gone.c.segment_id)
            .subquery("counts")
        )
        await self.session.execute(
            update(Segment)
            .where(Segment.id == counts.c.segment_id)
            .values(members_count=func.greatest(Segment.members_count - counts.c.n, 0))
        )

    async def export_rows(self, external_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Every row segment holds about these customers, by kind, as plain dicts."""
        part = {
            "orders": await self._rows(
                select(Order)
                .where(Order.customer_external_id.in_(external_ids))
                .order_by(Order.placed_at, Order.order_external_id)
            ),
            "interactions": await self._rows(
                select(InteractionDaily)
                .where(InteractionDaily.customer_external_id.in_(external_ids))
                .order_by(
                    InteractionDaily.customer_external_id,
                    InteractionDaily.day,
                    InteractionDaily.type,
                    InteractionDaily.category,
                    InteractionDaily.sku,
                )
            ),
            "consents": await self._rows(
                select(CustomerConsent)
                .where(CustomerConsent.customer_external_id.in_(external_ids))
                .order_by(
                    CustomerConsent.customer_external_id,
                    CustomerConsent.channel,
                    CustomerConsent.purpose,
                )
            ),
            "tags": await self._rows(
                select(CustomerTag)
                .where(CustomerTag.customer_external_id.in_(external_ids))
                .order_by(CustomerTag.customer_external_id, CustomerTag.tag, CustomerTag.origin)
            ),
            "loyalty": await self._rows(
                select(CustomerLoyalty)
                .where(CustomerLoyalty.customer_external_id.in_(external_ids))
                .order_by(CustomerLoyalty.customer_external_id)
            ),
            "scores": await self._rows(
                select(CustomerScore)
                .where(CustomerScore.customer_external_id.in_(external_ids))
                .order_by(CustomerScore.customer_external_id)
            ),
        }
        lines = await self._rows(
            select(OrderLine)
            .where(
                OrderLine.order_external_id.in_([o["order_external_id"] for o in part["orders"]])
            )
            .order_by(OrderLine.order_external_id, OrderLine.line_no)
        )
        by_order: dict[str, list[dict[str, Any]]] = {}
        for line in lines:
            by_order.setdefault(line["order_external_id"], []).append(line)
        for order in part["orders"]:
            order["lines"] = by_order.get(order["order_external_id"], [])
        memberships = await self.session.execute(
            select(
                SegmentMember.customer_external_id,
                SegmentMember.segment_id,
                Segment.name.label("segment_name"),
                SegmentMember.entered_at,
            )
            .join(Segment, Segment.id == SegmentMember.segment_id)
            .where(SegmentMember.customer_external_id.in_(external_ids))
            .order_by(SegmentMember.customer_external_id, Segment.name)
        )
        part["segments"] = [dict(m._mapping) for m in memberships]
        return part

    async def _rows(self, stmt: Any) -> list[dict[str, Any]]:
        """The ORM rows of ``stmt`` as dicts of all their columns."""
        rows = (await self.session.execute(stmt)).scalars().all()
        return [{c.key: getattr(row, c.key) for c in row.__table__.columns} for row in rows]
