"""SQL of tag rules (segments of kind ``tag``)."""

from __future__ import annotations

from sqlalchemy import select

from crm_common.repository import RepositoryBase
from crm_segment.models import Segment


class TagRuleRepository(RepositoryBase[Segment]):
    """Live tag-rule segments by tag."""

    model = Segment

    async def all(self) -> list[Segment]:
        """Every live tag rule, by tag."""
        stmt = (
            select(Segment)
            .where(Segment.kind == "tag", Segment.deleted_at.is_(None))
            .order_by(Segment.key)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def by_tag(self, tag: str, *, for_update: bool = False) -> Segment | None:
        """The live tag rule of ``tag``; ``for_update`` locks it until commit."""
        stmt = select(Segment).where(
            Segment.kind == "tag", Segment.key == tag, Segment.deleted_at.is_(None)
        )
        if for_update:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return await self.get_one_or_none(stmt)

    async def name_taken(self, name: str) -> bool:
        """True when a live segment has ``name``."""
        stmt = select(Segment.id).where(Segment.name == name, Segment.deleted_at.is_(None))
        return (await self.session.execute(stmt.limit(1))).first() is not None
