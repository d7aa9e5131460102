"""SQL of segment's customer projection (the only module that writes it)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import LargeBinary, bindparam, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.repository import RepositoryBase
from crm_segment.models import Customer, ErasedCustomer, dead_letter_table


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
    ) -> None:
        """Insert or overwrite the profile fields, unless the row holds newer ones than ``at``."""
        stmt = pg_insert(Customer).values(
            customer_external_id=external_id,
            customer_id=customer_id,
            root_external_id=external_id,
            status="active",
            updated_at=at,
            **values,
        )
        changed = {name: stmt.excluded[name] for name in (*values, "customer_id", "updated_at")}
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Customer.customer_external_id],
                set_={**changed, "projected_at": func.now()},
                where=or_(Customer.updated_at.is_(None), Customer.updated_at <= at),
            )
        )

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
    ) -> list[uuid.UUID]:
        """Delete the rows of these customers; the internal ids of the rows deleted."""
        result = await self.session.execute(
            delete(Customer)
            .where(
                or_(
                    Customer.customer_external_id.in_(external_ids),
                    Customer.customer_id.in_(customer_ids),
                )
            )
            .returning(Customer.customer_id)
        )
        return list(result.scalars())

    async def tombstone(self, customer_ids: Sequence[uuid.UUID], at: datetime) -> None:
        """Remember that these customers were erased."""
        if customer_ids:
            await self.session.execute(
                pg_insert(ErasedCustomer)
                .values([{"customer_id": i, "erased_at": at} for i in customer_ids])
                .on_conflict_do_nothing()
            )

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
