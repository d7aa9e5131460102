"""SQL for customer tags and their change history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, Select, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_common.repository import RepositoryBase
from crm_profile.models import CustomerTag, CustomerTagChange

TagRow = Row[tuple[str, str, datetime]]


def _listing(group: Sequence[uuid.UUID]) -> Select[tuple[str, str, datetime]]:
    """One row per (tag, origin) of ``group``, with the earliest ``created_at``."""
    return (
        select(
            CustomerTag.tag,
            CustomerTag.origin,
            func.min(CustomerTag.created_at).label("created_at"),
        )
        .where(CustomerTag.customer_id.in_(group))
        .group_by(CustomerTag.tag, CustomerTag.origin)
    )


class TagRepository(RepositoryBase[CustomerTag]):
    """Tags of one customer or of a merge group, and when they changed."""

    model = CustomerTag

    async def list(self, group: Sequence[uuid.UUID]) -> list[TagRow]:
        """Every (tag, origin) of ``group``, by tag then origin."""
        stmt = _listing(group).order_by(CustomerTag.tag, CustomerTag.origin)
        return list((await self.session.execute(stmt)).all())

    async def find(self, group: Sequence[uuid.UUID], tag: str, origin: str) -> TagRow | None:
        """``tag`` of ``origin`` if a customer of ``group`` carries it."""
        stmt = _listing(group).where(CustomerTag.tag == tag, CustomerTag.origin == origin)
        return (await self.session.execute(stmt)).first()

    async def add(
        self, customer_id: uuid.UUID, tag: str, origin: str, at: datetime | None = None
    ) -> None:
        """Put ``tag`` on one customer (nothing happens when it is already there)."""
        values = {"customer_id": customer_id, "tag": tag, "origin": origin}
        if at is not None:
            values["created_at"] = at
        await self.session.execute(pg_insert(CustomerTag).values(values).on_conflict_do_nothing())

    async def remove(self, group: Sequence[uuid.UUID], tag: str, origin: str) -> int:
        """Take ``tag`` of ``origin`` off every customer of ``group``; how many rows went."""
        stmt = (
            delete(CustomerTag)
            .where(
                CustomerTag.customer_id.in_(group),
                CustomerTag.tag == tag,
                CustomerTag.origin == origin,
            )
            .returning(CustomerTag.customer_id)
        )
        return len((await self.session.execute(stmt)).all())

    async def record_change(
        self, customer_id: uuid.UUID, tag: str, origin: str, change: str, at: datetime
    ) -> None:
        """Keep when ``tag`` was added or removed."""
        await self.session.execute(
            insert(CustomerTagChange).values(
                customer_id=customer_id, tag=tag, origin=origin, change=change, changed_at=at
            )
        )

    async def last_change(
        self, group: Sequence[uuid.UUID], tag: str, origin: str
    ) -> datetime | None:
        """When ``tag`` of ``origin`` last changed anywhere in ``group``."""
        stmt = select(func.max(CustomerTagChange.changed_at)).where(
            CustomerTagChange.customer_id.in_(group),
            CustomerTagChange.tag == tag,
            CustomerTagChange.origin == origin,
        )
        return (await self.session.execute(stmt)).scalar_one()
