"""SQL of the evaluator: segments to evaluate, members in and out, derived tags, schedules.

Every membership change is a single statement that says which rows it really changed
(``INSERT ... ON CONFLICT DO NOTHING RETURNING`` and ``DELETE ... RETURNING``), so two
evaluators racing on the same customer and segment never both report the same change.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    Text,
    Uuid,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.evaluation.queue import enqueue_select
from crm_segment.lifecycle.stages import LifecycleRules, next_change_expr
from crm_segment.models import (
    Customer,
    CustomerScore,
    CustomerTag,
    EvaluationQueue,
    InteractionDaily,
    Order,
    Segment,
    SegmentMember,
)

#: Origin of the ``customer_tag`` rows tag rules write.
TAG_ORIGIN = "segment"


def _matching(predicate: ColumnElement[bool]) -> Select[tuple[str]]:
    """Active customers for whom ``predicate`` holds."""
    return select(Customer.customer_external_id).where(Customer.status == "active", predicate)


class EvaluationRepository:
    """Segments, their members, derived tags and the next due times of customers."""

    def __init__(self, session: AsyncSession) -> None:
        """Work in ``session``'s transaction."""
        self.session = session

    # segments

    async def live_segments(self) -> list[Segment]:
        """Enabled, not deleted segments (materialised or not), oldest first."""
        stmt = (
            select(Segment)
            .where(Segment.deleted_at.is_(None), Segment.enabled.is_(True))
            .order_by(Segment.created_at, Segment.id)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def all_segments(self) -> list[Segment]:
        """Every segment that is not deleted (enabled or not), oldest first."""
        stmt = (
            select(Segment)
            .where(Segment.deleted_at.is_(None))
            .order_by(Segment.created_at, Segment.id)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def stale_segment_ids(self) -> list[uuid.UUID]:
        """Segments whose members do not reflect their current version yet."""
        stmt = (
            select(Segment.id)
            .where(Segment.deleted_at.is_(None), Segment.evaluated_version < Segment.version)
            .order_by(Segment.updated_at, Segment.id)
        )
        return list((await self.session.execute(stmt)).scalars().all())

    async def claim_segment(self, segment_id: uuid.UUID) -> Segment | None:
        """The segment, claimed for a full evaluation until commit; None when another
        evaluator has it.

        An advisory lock, not a row lock: batches keep adjusting the segment's
        ``members_count`` meanwhile, and a row lock held for the whole evaluation would make
        them wait (or deadlock, when the evaluation in turn waits for a batch's new member).
        """
        key = func.hashtextextended(literal(str(segment_id), Text), 0)
        got = (await self.session.execute(select(func.pg_try_advisory_xact_lock(key)))).scalar()
        if not got:
            return None
        stmt = (
            select(Segment)
            .where(Segment.id == segment_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def mark_evaluated(self, segment_id: uuid.UUID, version: int, now: datetime) -> int:
        """Record that ``version`` is materialised (unless the rule changed meanwhile) and
        recount the members; returns the count."""
        count = select(func.count()).where(SegmentMember.segment_id == segment_id).scalar_subquery()
        stmt = (
            update(Segment)
            .where(Segment.id == segment_id)
            .values(
                evaluated_version=case(
                    (Segment.version == version, version), else_=Segment.evaluated_version
                ),
                evaluated_at=now,
                members_count=count,
            )
            .returning(Segment.members_count)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def adjust_counts(self, deltas: dict[uuid.UUID, int]) -> None:
        """Add each delta to its segment's ``members_count`` (in id order: no deadlocks)."""
        for segment_id in sorted(deltas):
            if deltas[segment_id]:
                await self.session.execute(
                    update(Segment)
                    .where(Segment.id == segment_id)
                    .values(members_count=Segment.members_count + deltas[segment_id])
                )

    # members

    async def matching(self, predicate: ColumnElement[bool], ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are active customers satisfying ``predicate``."""
        stmt = _matching(predicate).where(Customer.customer_external_id.in_(ids))
        return set((await self.session.execute(stmt)).scalars().all())

    async def add_members(
        self, segment_id: uuid.UUID, ids: Iterable[str], now: datetime
    ) -> list[str]:
        """Insert these members; returns those that were not members already."""
        rows = [
            {"segment_id": segment_id, "customer_external_id": i, "entered_at": now}
            for i in sorted(set(ids))
        ]
        if not rows:
            return []
        stmt = (
            pg_insert(SegmentMember)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(SegmentMember.customer_external_id)
        )
        return sorted((await self.session.execute(stmt)).scalars().all())

    async def remove_members_except(
        self, segment_id: uuid.UUID, ids: Sequence[str], keep: Iterable[str]
    ) -> list[str]:
        """Delete memberships of ``ids`` not in ``keep``; returns those really deleted."""
        gone = sorted(set(ids) - set(keep))
        if not gone:
            return []
        stmt = (
            delete(SegmentMember)
            .where(
                SegmentMember.segment_id == segment_id,
                SegmentMember.customer_external_id.in_(gone),
            )
            .returning(SegmentMember.customer_external_id)
        )
        return sorted((await self.session.execute(stmt)).scalars().all())

    async def enter_all(
        self, segment_id: uuid.UUID, predicate: ColumnElement[bool], now: datetime
    ) -> list[str]:
        """Set-based: every matching customer not yet a member becomes one; returns them."""
        source = select(
            literal(segment_id, Uuid),
            Customer.customer_external_id,
            literal(now, DateTime(timezone=True)),
        ).where(Customer.status == "active", predicate)
        stmt = (
            pg_insert(SegmentMember)
            .from_select(["segment_id", "customer_external_id", "entered_at"], source)
            .on_conflict_do_nothing()
            .returning(SegmentMember.customer_external_id)
        )
        return sorted((await self.session.execute(stmt)).scalars().all())

    async def exit_all(
        self, segment_id: uuid.UUID, predicate: ColumnElement[bool] | None
    ) -> list[str]:
        """Set-based: every member no longer matching (all, when ``predicate`` is None) leaves.

        The matching set is computed first into a CTE: the predicate may itself read
        ``segment_member`` (membership of another segment), which must not correlate with
        the rows being deleted.
        """
        stmt = delete(SegmentMember).where(SegmentMember.segment_id == segment_id)
        if predicate is not None:
            matched = _matching(predicate).cte("matched")
            stmt = stmt.where(
                ~exists(
                    select(literal_column("1"))
                    .select_from(matched)
                    .where(matched.c.customer_external_id == SegmentMember.customer_external_id)
                )
            )
        returning = stmt.returning(SegmentMember.customer_external_id)
        return sorted((await self.session.execute(returning)).scalars().all())

    # derived tags

    async def add_tags(self, tag: str, ids: Sequence[str], now: datetime) -> None:
        """Put ``tag`` (origin ``segment``) on these root customers."""
        if not ids:
            return
        rows = [
            {
                "customer_external_id": i,
                "root_external_id": i,
                "tag": tag,
                "origin": TAG_ORIGIN,
                "changed_at": now,
            }
            for i in ids
        ]
        stmt = pg_insert(CustomerTag).values(rows)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[
                    CustomerTag.customer_external_id,
                    CustomerTag.tag,
                    CustomerTag.origin,
                ],
                set_={
                    "changed_at": stmt.excluded.changed_at,
                    "root_external_id": stmt.excluded.root_external_id,
                },
            )
        )

    async def remove_tags(self, tag: str, ids: Sequence[str]) -> None:
        """Take ``tag`` (origin ``segment``) off these customers."""
        if not ids:
            return
        await self.session.execute(
            delete(CustomerTag).where(
                CustomerTag.tag == tag,
                CustomerTag.origin == TAG_ORIGIN,
                CustomerTag.customer_external_id.in_(ids),
            )
        )

    # scheduling

    async def schedule(
        self,
        ids: Sequence[str],
        windows: Iterable[tuple[str, int]],
        now: datetime,
        lifecycle: LifecycleRules | None = None,
    ) -> int:
        """Queue each of ``ids`` for the next moment one of its facts enters or leaves a window,
        or (with ``lifecycle``) its lifecycle stage changes with time alone.

        The compiler's windows (``crm_segment.rules.compiler``): an order is inside an
        ``(orders, d)`` window while ``now - d days < placed_at <= now``, so it enters at
        ``placed_at`` (an order dated in the future) and leaves at ``placed_at + d days``; an
        interaction is inside an ``(events, d)`` window while ``today - d < day <= today``
        (UTC days), so it leaves at midnight UTC starting day ``day + d``. The customer is
        due at the earliest such moment after ``now``. With ``lifecycle``, a customer with a
        ``customer_score`` row is also due when its stage would next change without a new
        order (``crm_segment.lifecycle.stages.next_change_expr``, computed from the
        aggregates just refreshed: active → at_risk → dormant → churned). One statement for
        the whole batch (``least`` with any due time already queued); returns how many got a
        due time.
        """
        windows = set(windows)
        parts: list[Select[tuple[str, Any]]] = []
        if lifecycle is not None:
            changes = next_change_expr(
                CustomerScore.first_order_at.expression,
                CustomerScore.last_order_at.expression,
                CustomerScore.orders_count.expression,
                now,
                lifecycle,
            )
            parts.append(
                select(CustomerScore.customer_external_id.label("id"), changes.label("due")).where(
                    CustomerScore.customer_external_id.in_(ids), changes.is_not(None)
                )
            )
        for source, days in sorted(windows):
            span = func.make_interval(0, 0, 0, days)
            if source == "orders":
                leaves = Order.placed_at + span
                parts.append(
                    select(Order.root_external_id.label("id"), leaves.label("due")).where(
                        Order.root_external_id.in_(ids), leaves > now
                    )
                )
            elif source == "events":
                midnight = cast(InteractionDaily.day, DateTime) + span
                leaves = func.timezone("UTC", midnight)
                parts.append(
                    select(
                        InteractionDaily.root_external_id.label("id"), leaves.label("due")
                    ).where(InteractionDaily.root_external_id.in_(ids), leaves > now)
                )
        if any(source == "orders" for source, _ in windows):
            parts.append(  # future-dated orders enter their windows when their time comes
                select(Order.root_external_id.label("id"), Order.placed_at.label("due")).where(
                    Order.root_external_id.in_(ids), Order.placed_at > now
                )
            )
        if not ids or not parts:
            return 0
        facts = union_all(*parts).subquery("facts")
        due = select(facts.c.id, func.min(facts.c.due), literal("scheduled", Text)).group_by(
            facts.c.id
        )
        upsert = enqueue_select(due).returning(EvaluationQueue.customer_external_id)
        return len((await self.session.execute(upsert)).all())
