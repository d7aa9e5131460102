"""SQL for customers and their merge groups."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, text

from crm_common.repository import Page, RepositoryBase
from crm_profile.models import Customer, CustomerTag

#: Every customer whose merge chain ends at ``:survivor`` (the survivor included).
_GROUP = text(
    """
    WITH RECURSIVE grp(id, depth) AS (
        SELECT CAST(:survivor AS uuid), 0
        UNION ALL
        SELECT c.id, g.depth + 1 FROM profile.customer c JOIN grp g ON c.merged_into_id = g.id
        WHERE g.depth < 64
    )
    SELECT id FROM grp
    """
)


class CustomerRepository(RepositoryBase[Customer]):
    """Customers by external id, merge groups and listings."""

    model = Customer

    async def by_external_id(
        self, external_id: str, *, for_update: bool = False
    ) -> Customer | None:
        """The customer row with this external id (merged or not)."""
        stmt = select(Customer).where(Customer.external_id == external_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.get_one_or_none(stmt)

    async def by_id(self, customer_id: uuid.UUID, *, for_update: bool = False) -> Customer | None:
        """The customer row with this internal id."""
        stmt = select(Customer).where(Customer.id == customer_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.get_one_or_none(stmt)

    async def group_ids(self, survivor_id: uuid.UUID) -> list[uuid.UUID]:
        """Ids of the survivor and of every customer merged into it, directly or through others."""
        rows = await self.session.execute(_GROUP, {"survivor": survivor_id})
        return [r[0] for r in rows]

    async def merged_external_ids(self, survivor_id: uuid.UUID) -> list[str]:
        """External ids of the customers merged into ``survivor_id`` (not the survivor's own)."""
        ids = [i for i in await self.group_ids(survivor_id) if i != survivor_id]
        if not ids:
            return []
        rows = await self.session.execute(
            select(Customer.external_id).where(Customer.id.in_(ids)).order_by(Customer.external_id)
        )
        return list(rows.scalars())

    async def tags(self, customer_ids: Sequence[uuid.UUID]) -> list[CustomerTag]:
        """Tags of a merge group, oldest first, one per (tag, origin)."""
        stmt = (
            select(CustomerTag)
            .where(CustomerTag.customer_id.in_(customer_ids))
            .distinct(CustomerTag.tag, CustomerTag.origin)
            .order_by(CustomerTag.tag, CustomerTag.origin, CustomerTag.created_at)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def list_active(
        self,
        *,
        email: str | None,
        phone: str | None,
        tag: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Customer]:
        """Active customers, filtered, in creation order."""
        stmt = select(Customer).where(Customer.status == "active")
        if email is not None:
            stmt = stmt.where(Customer.email == email)
        if phone is not None:
            stmt = stmt.where(Customer.phone == phone)
        if tag is not None:
            stmt = stmt.where(
                Customer.id.in_(select(CustomerTag.customer_id).where(CustomerTag.tag == tag))
            )
        return await self.paginate(
            stmt, order_by=[Customer.created_at, Customer.id], cursor=cursor, limit=limit
        )
