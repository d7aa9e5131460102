"""SQL of lifecycle: restage customers from the aggregates already in ``customer_score``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, Text, any_, literal, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.lifecycle.stages import LifecycleRules, stage_expr
from crm_segment.models import CustomerScore

SCORE: Table = CustomerScore.__table__  # type: ignore[assignment]


async def restage(
    session: AsyncSession, ids: Sequence[str] | None, now: datetime, rules: LifecycleRules
) -> list[str]:
    """Write the stage at ``now`` where it changed (``ids`` None: everybody); who changed."""
    stage = stage_expr(
        SCORE.c.first_order_at, SCORE.c.last_order_at, SCORE.c.orders_count, now, rules
    )
    stmt = (
        update(SCORE)
        .where(SCORE.c.lifecycle.is_distinct_from(stage))
        .values(lifecycle=stage, lifecycle_changed_at=now, computed_at=now)
        .returning(SCORE.c.customer_external_id)
    )
    if ids is not None:
        stmt = stmt.where(SCORE.c.customer_external_id == any_(literal(list(ids), ARRAY(Text))))
    return list((await session.execute(stmt)).scalars())
