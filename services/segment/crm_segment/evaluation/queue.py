"""The re-evaluation queue: projections call :func:`enqueue` when a customer's inputs change.

One row per customer; enqueuing again keeps the earliest due time (and the reason that came
with it), so a burst of events about one customer costs one evaluation. Every writer of the
queue goes through :func:`keep_earliest`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import EvaluationQueue


def keep_earliest(stmt: Insert) -> Insert:
    """``stmt``, an ``INSERT`` into the queue (values or a select of ``customer_external_id,
    due_at, reason``), keeping one row per customer: the earliest due time and its reason."""
    return stmt.on_conflict_do_update(
        index_elements=[EvaluationQueue.customer_external_id],
        set_={
            "due_at": func.least(EvaluationQueue.due_at, stmt.excluded.due_at),
            "reason": case(
                (stmt.excluded.due_at < EvaluationQueue.due_at, stmt.excluded.reason),
                else_=EvaluationQueue.reason,
            ),
            "enqueued_at": func.now(),
        },
    )


def enqueue_select(rows: Select[Any]) -> Insert:
    """Queue the rows of ``rows`` (``customer_external_id, due_at, reason``) in one statement."""
    return keep_earliest(
        pg_insert(EvaluationQueue).from_select(["customer_external_id", "due_at", "reason"], rows)
    )


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
    await session.execute(keep_earliest(stmt))
