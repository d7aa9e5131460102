"""SQL of the segments API: segments, their materialised members, rule previews."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select

from crm_common.repository import Page, RepositoryBase
from crm_segment.models import Customer, Segment, SegmentMember

#: Any object anywhere in a rule whose ``segment`` is ``$id`` (a constant path; the id is bound).
_REFERS_TO: ColumnElement[Any] = literal_column("'$.** ? (@.segment == $id)'::jsonpath")


class SegmentRepository(RepositoryBase[Segment]):
    """Segments; "live" means not soft-deleted."""

    model = Segment

    async def get_live(self, segment_id: uuid.UUID) -> Segment | None:
        """The live segment with ``segment_id``."""
        return await self.get_one_or_none(
            select(Segment).where(Segment.id == segment_id, Segment.deleted_at.is_(None))
        )

    async def name_taken(self, name: str, *, other_than: uuid.UUID | None = None) -> bool:
        """True when a live segment other than ``other_than`` is called ``name``."""
        stmt = select(Segment.id).where(Segment.name == name, Segment.deleted_at.is_(None))
        if other_than is not None:
            stmt = stmt.where(Segment.id != other_than)
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def rules_of(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
        """The rules of the live segments among ``ids``."""
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Segment.id, Segment.rule).where(
                Segment.id.in_(ids), Segment.deleted_at.is_(None)
            )
        )
        return {row.id: row.rule for row in rows}

    async def referrers(self, segment_id: uuid.UUID) -> list[str]:
        """Names of the other live segments whose rules refer to ``segment_id``."""
        refers = func.jsonb_path_exists(
            Segment.rule, _REFERS_TO, func.jsonb_build_object("id", str(segment_id))
        )
        stmt = (
            select(Segment.name)
            .where(Segment.deleted_at.is_(None), Segment.id != segment_id, refers)
            .order_by(Segment.name)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def page(self, *, kind: str | None, cursor: str | None, limit: int) -> Page[Segment]:
        """Live segments, oldest first, optionally of one kind."""
        stmt = select(Segment).where(Segment.deleted_at.is_(None))
        if kind is not None:
            stmt = stmt.where(Segment.kind == kind)
        return await self.paginate(
            stmt, order_by=[Segment.created_at, Segment.id], cursor=cursor, limit=limit
        )

    async def preview(self, predicate: ColumnElement[bool], sample: int) -> tuple[int, list[str]]:
        """How many active customers satisfy ``predicate``, and the first ``sample`` ids."""
        where = (Customer.status == "active", predicate)
        count = await self.session.scalar(select(func.count()).select_from(Customer).where(*where))
        ids = await self.session.execute(
            select(Customer.customer_external_id)
            .where(*where)
            .order_by(Customer.customer_external_id)
            .limit(sample)
        )
        return int(count or 0), list(ids.scalars())

    async def customer(self, external_id: str) -> Customer | None:
        """The projection row of a customer (merged duplicates included)."""
        return await self.session.get(Customer, external_id)

    async def memberships(self, root: str) -> list[tuple[Segment, SegmentMember]]:
        """The live segments ``root`` is a member of, by name."""
        rows = await self.session.execute(
            select(Segment, SegmentMember)
            .join(SegmentMember, SegmentMember.segment_id == Segment.id)
            .where(SegmentMember.customer_external_id == root, Segment.deleted_at.is_(None))
            .order_by(Segment.name, Segment.id)
        )
        return [(row[0], row[1]) for row in rows]


class MemberRepository(RepositoryBase[SegmentMember]):
    """Materialised members (written by the evaluator; read here)."""

    model = SegmentMember

    async def page(
        self, segment_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> Page[SegmentMember]:
        """Members of a segment by external id."""
        stmt = select(SegmentMember).where(SegmentMember.segment_id == segment_id)
        return await self.paginate(
            stmt, order_by=[SegmentMember.customer_external_id], cursor=cursor, limit=limit
        )
