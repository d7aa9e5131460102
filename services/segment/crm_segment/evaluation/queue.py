"""The re-evaluation queue: projections call :func:`enqueue` when a customer's inputs change.

One row per customer; enqueuing again keeps the earliest due time, so a burst of events about
one customer costs one evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import EvaluationQueue


async def enqueue(
    session: AsyncSession,
    external_ids: Iterable[str],
    due_at: datetime | None = None,
    reason: str = "input",
) -> None:
    """Queue these (root) customers for re-evaluation at ``due_at`` (default: now)."""
    ids = sorted(set(external_ids))
    if not ids:
        return
    due = due_at if due_at is not None else func.now()
    stmt = pg_insert(EvaluationQueue).values(
        [{"customer_external_id": i, "due_at": due, "reason": reason} for i in ids]
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[EvaluationQueue.customer_external_id],
            set_={
                "due_at": func.least(EvaluationQueue.due_at, stmt.excluded.due_at),
                "reason": stmt.excluded.reason,
                "enqueued_at": func.now(),
            },
        )
    )
