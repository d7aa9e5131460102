"""Rule segments: create, change, delete, preview; members and a customer's segments.

Saving a segment never evaluates it: a new or changed rule has ``version`` ahead of
``evaluated_version`` and the evaluator materialises its members.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.repository import Page
from crm_segment.evaluation.service import retire_segment
from crm_segment.models import Segment, SegmentMember
from crm_segment.rules.compiler import (
    CompiledRule,
    compile_rule,
    referenced_ids,
    segment_references,
)
from crm_segment.rules.errors import RuleError
from crm_segment.segments.errors import (
    CustomerNotFound,
    SegmentInUse,
    SegmentNameTaken,
    SegmentNotFound,
    SegmentReadOnly,
)
from crm_segment.segments.repository import MemberRepository, SegmentRepository
from crm_segment.segments.schemas import (
    PREVIEW_SAMPLE,
    CustomerSegmentRead,
    CustomerSegments,
    PreviewRead,
    SegmentCreate,
    SegmentUpdate,
)

#: How many segments a reference chain is followed through before giving up on cycle search.
MAX_REFERENCE_WALK = 10_000


async def validate_rule(
    session: AsyncSession,
    rule: Mapping[str, Any],
    *,
    now: datetime,
    segment_id: uuid.UUID | None = None,
    path: str = "rule",
) -> CompiledRule:
    """Compile ``rule``; every segment it names must be live and, when the rule is that of
    ``segment_id``, must not lead back to it (422 with the path of the reference)."""
    compiled = compile_rule(rule, now=now, path=path)
    references = segment_references(rule, path=path)
    repo = SegmentRepository(session)
    rules = await repo.rules_of(references.keys())
    for ref, at in references.items():
        if ref not in rules:
            raise RuleError(at, f"no segment {ref}", "unknown_segment")
    if segment_id is not None:
        for ref, at in references.items():
            if ref == segment_id or await _reaches(repo, rules[ref], segment_id):
                raise RuleError(at, f"segment {ref} refers back to this segment", "cycle")
    return compiled


async def _reaches(repo: SegmentRepository, rule: dict[str, Any], target: uuid.UUID) -> bool:
    """True when following segment references from ``rule`` arrives at ``target``."""
    seen: set[uuid.UUID] = set()
    frontier = referenced_ids(rule)
    while frontier and len(seen) < MAX_REFERENCE_WALK:
        if target in frontier:
            return True
        seen |= frontier
        rules = await repo.rules_of(frontier)
        frontier = set().union(*(referenced_ids(r) for r in rules.values())) - seen
    return False


async def create(session: AsyncSession, body: SegmentCreate, *, now: datetime) -> Segment:
    """A new rule segment (version 1, not evaluated yet)."""
    await validate_rule(session, body.rule, now=now)
    repo = SegmentRepository(session)
    if await repo.name_taken(body.name):
        raise SegmentNameTaken(f"a segment named {body.name!r} exists")
    segment = Segment(
        id=uuid.uuid4(),
        name=body.name,
        description=body.description,
        kind="rule",
        rule=body.rule,
        enabled=True,
        version=1,
        evaluated_version=0,
        members_count=0,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    await _flush(session, body.name)
    return segment


async def _flush(session: AsyncSession, name: str) -> None:
    """Flush in a savepoint so a concurrent save of the same name is a 409, not a 500."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise SegmentNameTaken(f"a segment named {name!r} exists") from exc


async def get(session: AsyncSession, segment_id: uuid.UUID) -> Segment:
    """The live segment ``segment_id``; 404 otherwise."""
    segment = await SegmentRepository(session).get_live(segment_id)
    if segment is None:
        raise SegmentNotFound()
    return segment


async def list_segments(
    session: AsyncSession, *, kind: str | None, cursor: str | None, limit: int
) -> Page[Segment]:
    """Live segments, oldest first."""
    return await SegmentRepository(session).page(kind=kind, cursor=cursor, limit=limit)


async def update(
    session: AsyncSession, segment_id: uuid.UUID, body: SegmentUpdate, *, now: datetime
) -> Segment:
    """Change name, description, rule or ``enabled``; a new rule bumps ``version``.

    Built-in and tag segments are managed by the service: only ``enabled`` changes here."""
    segment = await get(session, segment_id)
    changes = body.model_dump(exclude_unset=True)
    if segment.kind != "rule" and changes.keys() - {"enabled"}:
        raise SegmentReadOnly(f"a {segment.kind} segment's name, description and rule are fixed")
    repo = SegmentRepository(session)
    if "name" in changes and changes["name"] != segment.name:
        if await repo.name_taken(changes["name"], other_than=segment.id):
            raise SegmentNameTaken(f"a segment named {changes['name']!r} exists")
    if "rule" in changes and changes["rule"] != segment.rule:
        await validate_rule(session, changes["rule"], now=now, segment_id=segment.id)
        segment.version += 1
    for key, value in changes.items():
        setattr(segment, key, value)
    segment.updated_at = now
    await _flush(session, segment.name)
    return segment


async def delete(session: AsyncSession, segment_id: uuid.UUID, *, now: datetime) -> None:
    """Soft-delete a rule segment nobody refers to (its name becomes free again)."""
    segment = await get(session, segment_id)
    if segment.kind != "rule":
        raise SegmentReadOnly(f"a {segment.kind} segment cannot be deleted")
    referrers = await SegmentRepository(session).referrers(segment.id)
    if referrers:
        raise SegmentInUse(f"referred to by: {', '.join(referrers)}")
    segment.updated_at = now
    await retire_segment(session, segment, now)


async def preview(session: AsyncSession, rule: Mapping[str, Any], *, now: datetime) -> PreviewRead:
    """Count and sample the active customers matching ``rule`` now; nothing is saved."""
    compiled = await validate_rule(session, rule, now=now)
    count, sample = await SegmentRepository(session).preview(compiled.predicate, PREVIEW_SAMPLE)
    return PreviewRead(count=count, sample=sample)


async def members(
    session: AsyncSession, segment_id: uuid.UUID, *, cursor: str | None, limit: int
) -> Page[SegmentMember]:
    """Materialised members of a live segment."""
    await get(session, segment_id)
    return await MemberRepository(session).page(segment_id, cursor=cursor, limit=limit)


async def customer_segments(session: AsyncSession, external_id: str) -> CustomerSegments:
    """The segments of a customer, or of its survivor when it was merged; 404 when unknown."""
    repo = SegmentRepository(session)
    customer = await repo.customer(external_id)
    if customer is None:
        raise CustomerNotFound()
    root = customer.root_external_id
    rows = await repo.memberships(root)
    return CustomerSegments(
        customer_external_id=root,
        segments=[
            CustomerSegmentRead(
                id=s.id,
                name=s.name,
                kind=s.kind,
                key=s.key,
                tag=s.tag,
                entered_at=m.entered_at,
            )
            for s, m in rows
        ],
    )
