"""The re-evaluation queue keeps one row per customer: the earliest due time and its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.evaluation.queue import enqueue, enqueue_select
from crm_segment.models import EvaluationQueue

T = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def row(session: AsyncSession, external_id: str) -> tuple[datetime, str]:
    stmt = select(EvaluationQueue.due_at, EvaluationQueue.reason).where(
        EvaluationQueue.customer_external_id == external_id
    )
    due, reason = (await session.execute(stmt)).one()
    return due, reason


async def test_the_earliest_due_time_wins_with_its_reason(session: AsyncSession) -> None:
    await enqueue(session, ["q-1"], T + timedelta(hours=1), reason="scheduled")
    await enqueue(session, ["q-1"], T, reason="input")
    assert await row(session, "q-1") == (T, "input")
    await enqueue(session, ["q-1"], T + timedelta(hours=2), reason="scheduled")
    assert await row(session, "q-1") == (T, "input")


async def test_a_select_is_queued_the_same_way(session: AsyncSession) -> None:
    await enqueue(session, ["q-2"], T, reason="input")
    await session.execute(
        enqueue_select(
            select(
                EvaluationQueue.customer_external_id,
                EvaluationQueue.due_at - timedelta(minutes=5),
                EvaluationQueue.reason.op("||")("-again"),
            ).where(EvaluationQueue.customer_external_id == "q-2")
        )
    )
    assert await row(session, "q-2") == (T - timedelta(minutes=5), "input-again")
