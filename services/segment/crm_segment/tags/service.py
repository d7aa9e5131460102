"""Tag rules: a tag plus a rule, kept as a segment of kind ``tag`` whose members carry the tag.

Creating or changing a rule only stores it (and bumps the segment's version when the rule or
``enabled`` changed); the worker then re-evaluates it over every customer, adding and removing
the tag with ``crm.segment.tag.changed`` events. Deleting a rule takes the tag off everyone at
once, in the request's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.builtins import tag_segment_values
from crm_segment.evaluation.service import retire_segment
from crm_segment.models import Segment
from crm_segment.rules.compiler import compile_rule
from crm_segment.tags.errors import TagRuleNameTaken, TagRuleNotFound
from crm_segment.tags.repository import TagRuleRepository
from crm_segment.tags.schemas import TagRuleWrite


async def list_rules(session: AsyncSession) -> list[Segment]:
    """Every live tag rule."""
    return await TagRuleRepository(session).all()


async def get_rule(session: AsyncSession, tag: str) -> Segment:
    """The tag rule of ``tag``, or 404."""
    segment = await TagRuleRepository(session).by_tag(tag)
    if segment is None:
        raise TagRuleNotFound(f"No tag rule for {tag!r}")
    return segment


async def put_rule(
    session: AsyncSession, tag: str, data: TagRuleWrite, now: datetime
) -> tuple[Segment, bool]:
    """Create or replace the rule of ``tag``; returns it and whether it was created.

    The rule is compiled first: an invalid one is refused with 422 naming its JSON path.
    """
    compile_rule(data.rule, now=now)
    repo = TagRuleRepository(session)
    segment = await repo.by_tag(tag, for_update=True)
    if segment is None:
        values = tag_segment_values(tag, data.rule, data.description)
        if await repo.name_taken(values["name"]):
            raise TagRuleNameTaken(f"A segment named {values['name']!r} exists")
        segment = Segment(**values, enabled=data.enabled, created_at=now, updated_at=now)
        session.add(segment)
        await session.flush()
        await session.refresh(segment)
        return segment, True
    if segment.rule != data.rule or segment.enabled != data.enabled:
        segment.version += 1
    segment.rule = data.rule
    segment.enabled = data.enabled
    segment.description = data.description
    segment.updated_at = now
    await session.flush()
    await session.refresh(segment)
    return segment, False


async def delete_rule(session: AsyncSession, tag: str, now: datetime) -> None:
    """Delete the rule of ``tag``: the tag is removed from every customer carrying it."""
    segment = await TagRuleRepository(session).by_tag(tag, for_update=True)
    if segment is None:
        raise TagRuleNotFound(f"No tag rule for {tag!r}")
    await retire_segment(session, segment, now)
