"""When the lifecycle stage will next change without a new order (for scheduling)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, Integer, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.lifecycle.stages import LifecycleRules, next_change_expr, stage_expr

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


async def next_and_stages(
    session: AsyncSession, first: datetime | None, last: datetime | None, n: int, now: datetime
) -> tuple[datetime | None, str, str | None]:
    """(next change, stage at now, stage at the next change)."""
    rules = LifecycleRules.from_settings(settings)
    f, la, c = (
        literal(first, DateTime(timezone=True)),
        literal(last, DateTime(timezone=True)),
        literal(n, Integer),
    )
    nxt = (await session.execute(select(next_change_expr(f, la, c, now, rules)))).scalar_one()
    before = (await session.execute(select(stage_expr(f, la, c, now, rules)))).scalar_one()
    after = None
    if nxt is not None:
        after = (await session.execute(select(stage_expr(f, la, c, nxt, rules)))).scalar_one()
    return nxt, before, after


class TestNextChange:
    @pytest.mark.parametrize(
        ("now_days", "expected_days", "before", "after"),
        [
            (1, 30, "new", "active"),
            (31, 90, "active", "at_risk"),
            (100, 180, "at_risk", "dormant"),
            (200, 365, "dormant", "churned"),
        ],
    )
    async def test_single_order(
        self, session: AsyncSession, now_days: int, expected_days: int, before: str, after: str
    ) -> None:
        got = await next_and_stages(session, T0, T0, 1, T0 + timedelta(days=now_days))
        assert got == (T0 + timedelta(days=expected_days) + S, before, after)

    async def test_rhythm(self, session: AsyncSession) -> None:
        last = T0 + timedelta(days=80)  # every 40 days: at risk after 80 days
        got = await next_and_stages(session, T0, last, 3, last + timedelta(days=10))
        assert got == (last + timedelta(days=80) + S, "active", "at_risk")

    async def test_nothing_left(self, session: AsyncSession) -> None:
        assert (await next_and_stages(session, T0, T0, 1, T0 + timedelta(days=400)))[:2] == (
            None,
            "churned",
        )
        assert (await next_and_stages(session, None, None, 0, T0))[:2] == (None, "prospect")
