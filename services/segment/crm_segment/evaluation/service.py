"""Keeping segment membership materialised and publishing every entry and exit once.

Two ways in, both writing membership changes and their events in the caller's transaction:

- :func:`evaluate_customers`: a few customers (a batch from the re-evaluation queue) against
  every live segment. Their scores are refreshed first; segments are taken in dependency
  order (a segment whose rule refers to other segments after those), one SQL query per
  dependency level computes every predicate for the whole batch, and the differences with
  ``segment_member`` are applied with statements that return only the rows they changed.
  The customers are then queued again for the next moment one of their facts leaves a time
  window some rule looks through, or their lifecycle stage changes with time alone (an
  ``active`` customer becomes ``at_risk`` when the days since the last order pass the
  threshold, without any event arriving).
- :func:`evaluate_segment_full`: one segment against every customer (new or changed rule,
  and the periodic safety net), set-based.

Exactly once: an event is written for a change only when the statement making the change
reports it (``INSERT ... ON CONFLICT DO NOTHING RETURNING`` / ``DELETE ... RETURNING``), in
the same transaction; a rolled-back batch leaves neither the change nor the event, and a
second evaluation of an unchanged customer finds nothing to change.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from crm_common.events import Envelope
from crm_segment.config import settings
from crm_segment.evaluation.repository import EvaluationRepository
from crm_segment.events import MEMBERSHIP_CHANGED, TAG_CHANGED, MembershipChangedV1, TagChangedV1
from crm_segment.lifecycle.stages import LifecycleRules
from crm_segment.models import Customer, Segment, SegmentMember, outbox
from crm_segment.rules import compiler
from crm_segment.scores import service as scores_service

log = logging.getLogger(__name__)

#: Events written per ``enqueue_many`` call (a full refresh may write very many).
_EVENT_CHUNK = 5000


@dataclass
class Changes:
    """Entries and exits made in one segment."""

    segment_id: uuid.UUID
    entered: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    """What :func:`evaluate_customers` did."""

    changes: list[Changes] = field(default_factory=list)
    scheduled: int = 0

    @property
    def entered(self) -> int:
        """Entries over every segment."""
        return sum(len(c.entered) for c in self.changes)

    @property
    def exited(self) -> int:
        """Exits over every segment."""
        return sum(len(c.exited) for c in self.changes)


def compile_segments(
    segments: Sequence[Segment], now: datetime
) -> dict[uuid.UUID, compiler.CompiledRule]:
    """Each segment's compiled rule; a stored rule that no longer compiles is logged, skipped."""
    compiled: dict[uuid.UUID, compiler.CompiledRule] = {}
    for segment in segments:
        try:
            compiled[segment.id] = compiler.compile_rule(segment.rule, now=now)
        except Exception:  # one broken rule must not stop every other segment
            log.exception("segment %s (%s): rule does not compile", segment.id, segment.name)
    return compiled


def dependency_levels(
    segments: Sequence[Segment], compiled: dict[uuid.UUID, compiler.CompiledRule]
) -> list[list[Segment]]:
    """Segments grouped so that each level refers only to segments of earlier levels.

    References to segments outside ``segments`` (deleted, disabled) do not order anything; a
    cycle (which the rule API refuses) would put its members together in the last level.
    """
    known = {s.id for s in segments}
    deps = {
        s.id: set(compiled[s.id].segments) & known - {s.id} if s.id in compiled else set()
        for s in segments
    }
    done: set[uuid.UUID] = set()
    remaining = list(segments)
    levels: list[list[Segment]] = []
    while remaining:
        level = [s for s in remaining if deps[s.id] <= done]
        if not level:  # a cycle: evaluate the rest together
            level = remaining
        levels.append(level)
        done |= {s.id for s in level}
        remaining = [s for s in remaining if s.id not in done]
    return levels


def _membership_event(segment: Segment, external_id: str, change: str, now: datetime) -> Envelope:
    payload = MembershipChangedV1(
        segment_id=segment.id,
        segment_name=segment.name,
        segment_kind=segment.kind,
        customer_external_id=external_id,
        change="entered" if change == "entered" else "exited",
        changed_at=now,
    )
    return MEMBERSHIP_CHANGED.envelope(payload, subject_id=external_id, time=now)


def _tag_event(tag: str, external_id: str, change: str, now: datetime) -> Envelope:
    payload = TagChangedV1(
        customer_external_id=external_id,
        tag=tag,
        change="added" if change == "added" else "removed",
        changed_at=now,
    )
    return TAG_CHANGED.envelope(payload, subject_id=external_id, time=now)


async def _publish(
    session: AsyncSession, segment: Segment, changes: Changes, now: datetime
) -> None:
    """Membership events for ``changes`` and, for a tag rule, its tags and tag events."""
    repo = EvaluationRepository(session)
    events = [_membership_event(segment, i, "entered", now) for i in changes.entered]
    events += [_membership_event(segment, i, "exited", now) for i in changes.exited]
    if segment.tag:
        await repo.add_tags(segment.tag, changes.entered, now)
        await repo.remove_tags(segment.tag, changes.exited)
        events += [_tag_event(segment.tag, i, "added", now) for i in changes.entered]
        events += [_tag_event(segment.tag, i, "removed", now) for i in changes.exited]
    for start in range(0, len(events), _EVENT_CHUNK):
        await outbox.enqueue_many(session, events[start : start + _EVENT_CHUNK])


def _predicates(
    level: Sequence[Segment],
    compiled: dict[uuid.UUID, compiler.CompiledRule],
    ids: Sequence[str],
) -> Select[tuple[Any, ...]]:
    """One query: for each active customer of ``ids``, whether each segment's rule holds."""
    columns: list[ColumnElement[Any]] = [Customer.customer_external_id.expression]
    for n, segment in enumerate(level):
        columns.append(compiled[segment.id].predicate.label(f"s{n}"))
    return select(*columns).where(
        Customer.customer_external_id.in_(ids), Customer.status == "active"
    )


async def evaluate_customers(
    session: AsyncSession, external_ids: Iterable[str], now: datetime
) -> BatchResult:
    """Refresh these root customers' scores, re-evaluate their memberships of every live,
    materialised segment, publish each entry/exit, and schedule their next re-evaluation.

    A customer that is not ``active`` (merged away, or unknown) leaves every segment.
    """
    ids = sorted(set(external_ids))
    result = BatchResult()
    if not ids:
        return result
    await scores_service.refresh_customers(session, ids, now)
    repo = EvaluationRepository(session)
    live = await repo.live_segments()
    compiled = compile_segments(live, now)
    ready = [s for s in live if s.evaluated_version == s.version and s.id in compiled]
    current: dict[uuid.UUID, set[str]] = {}
    if ready:
        rows = await session.execute(
            select(SegmentMember.segment_id, SegmentMember.customer_external_id).where(
                SegmentMember.customer_external_id.in_(ids),
                SegmentMember.segment_id.in_([s.id for s in ready]),
            )
        )
        for segment_id, external_id in rows:
            current.setdefault(segment_id, set()).add(external_id)
    deltas: dict[uuid.UUID, int] = {}
    for level in dependency_levels(ready, compiled):
        matched: dict[uuid.UUID, set[str]] = {s.id: set() for s in level}
        for row in await session.execute(_predicates(level, compiled, ids)):
            for n, segment in enumerate(level):
                if row[n + 1]:
                    matched[segment.id].add(row[0])
        for segment in level:
            members = current.get(segment.id, set())
            changes = Changes(segment.id)
            changes.exited = await repo.remove_members_except(
                segment.id, sorted(members), matched[segment.id]
            )
            changes.entered = await repo.add_members(segment.id, matched[segment.id] - members, now)
            if changes.entered or changes.exited:
                await _publish(session, segment, changes, now)
                deltas[segment.id] = len(changes.entered) - len(changes.exited)
                result.changes.append(changes)
    await repo.adjust_counts(deltas)
    windows = {w for c in compiled.values() for w in c.windows}
    lifecycle = LifecycleRules.from_settings(settings)
    result.scheduled = await repo.schedule(ids, windows, now, lifecycle)
    return result


async def evaluate_segment_full(
    session: AsyncSession, segment: Segment, now: datetime
) -> tuple[list[str], list[str]]:
    """Re-evaluate ``segment`` over every customer: returns ``(entered, exited)``.

    Marks the segment's current version materialised. A disabled or deleted segment is
    emptied (everyone exits).
    """
    repo = EvaluationRepository(session)
    if segment.enabled and segment.deleted_at is None:
        predicate = compiler.compile_rule(segment.rule, now=now).predicate
        exited = await repo.exit_all(segment.id, predicate)
        entered = await repo.enter_all(segment.id, predicate, now)
    else:
        exited = await repo.exit_all(segment.id, None)
        entered = []
    changes = Changes(segment.id, entered=entered, exited=exited)
    await _publish(session, segment, changes, now)
    counted = await repo.mark_evaluated(segment.id, segment.version, now)
    for name, value in (
        ("members_count", counted),
        ("evaluated_version", segment.version),
        ("evaluated_at", now),
    ):
        set_committed_value(segment, name, value)
    return entered, exited


async def retire_segment(session: AsyncSession, segment: Segment, now: datetime) -> list[str]:
    """Soft-delete ``segment``: every member exits (events, and tags for a tag rule).

    Returns the customers that exited. For the segment and tag-rule APIs' DELETE.
    """
    segment.deleted_at = now
    segment.enabled = False
    await session.flush()
    _, exited = await evaluate_segment_full(session, segment, now)
    return exited
