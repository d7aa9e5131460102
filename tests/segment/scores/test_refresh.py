"""The evaluator's refresh: one customer re-scored against the stored boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.models import CustomerScore, RfmBoundaries
from crm_segment.rfm import service as rfm_service
from crm_segment.scores.service import refresh_customers
from tests.segment.rfm.factories import add_customer, add_order
from tests.segment.rfm.fixtures import AS_OF, NOW, day
from tests.segment.rfm.test_batch import rows


async def score(session: AsyncSession, cid: str) -> CustomerScore | None:
    """One score row, fresh."""
    stmt = (
        select(CustomerScore)
        .where(CustomerScore.customer_external_id == cid)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


@pytest.mark.usefixtures("shop")
class TestIncremental:
    async def test_new_order_rescores_against_stored_boundaries(
        self, session: AsyncSession
    ) -> None:
        await rfm_service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        before = {k: (v.r, v.f, v.m, v.computed_at) for k, v in (await rows(session)).items()}
        # d (60 days, 2 orders, 500) orders again today for 250
        await add_order(session, "d", day(2026, 11, 30, 11), 250)
        await refresh_customers(session, ["d"], NOW)
        d = await score(session, "d")
        assert d is not None
        # cuts: recency [182, 60, 5, 0], frequency [-, -, 1, 3], monetary [70, 100, 300, 500]
        assert (d.recency_days, d.frequency, d.monetary_minor) == (0, 3, 750)
        assert (d.r, d.f, d.m, d.rfm_score, d.rfm_group) == (5, 5, 5, "555", "champions")
        assert (d.orders_count, d.revenue_minor) == (3, 750)
        assert d.last_order_at == day(2026, 11, 30, 11)
        after = {k: (v.r, v.f, v.m, v.computed_at) for k, v in (await rows(session)).items()}
        assert {k: v for k, v in after.items() if k != "d"} == {
            k: v for k, v in before.items() if k != "d"
        }
        # the boundaries stay those of the batch
        stored = await session.get(RfmBoundaries, 1)
        assert stored is not None and stored.boundaries["monetary"]["cuts"] == [70, 100, 300, 500]

    async def test_values_between_cuts(self, session: AsyncSession) -> None:
        await rfm_service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        # a brand-new customer: 20 days ago, 1 order of 90
        await add_customer(session, "n")
        await add_order(session, "n", NOW - timedelta(days=20), 90)
        await refresh_customers(session, ["n"], NOW)
        n = await score(session, "n")
        assert n is not None
        # 20 days: not <= 5, but <= 60 → R3; 1 order → F4; 90 >= 70 but < 100 → M2
        assert (n.recency_days, n.r, n.f, n.m, n.rfm_group) == (20, 3, 4, 2, "loyal")
        assert n.lifecycle == "new" and n.lifecycle_changed_at == NOW

    async def test_cancellation_removes_the_order(self, session: AsyncSession) -> None:
        await rfm_service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        b = await rows(session)
        assert b["b"].frequency == 1
        from crm_segment.models import Order

        order = (
            await session.execute(select(Order).where(Order.root_external_id == "b"))
        ).scalar_one()
        order.status = "cancelled"
        await session.flush()
        await refresh_customers(session, ["b"], NOW)
        got = await score(session, "b")
        assert got is not None
        assert (got.r, got.frequency, got.rfm_group, got.orders_count) == (None, None, None, 0)
        assert got.lifecycle == "prospect"

    async def test_merged_lose_their_rows(self, session: AsyncSession) -> None:
        session.add(CustomerScore(customer_external_id="x", orders_count=1, revenue_minor=10))
        session.add(CustomerScore(customer_external_id="ghost", orders_count=1, revenue_minor=1))
        await session.flush()
        await refresh_customers(session, ["x", "ghost", "a", "a"], NOW)
        assert await score(session, "x") is None
        # a row without a customer or an order (yet) is kept, with what is known: no order
        ghost = await score(session, "ghost")
        assert ghost is not None
        assert (ghost.orders_count, ghost.revenue_minor, ghost.lifecycle) == (0, 0, "prospect")
        a = await score(session, "a")
        assert a is not None and a.orders_count == 3  # x's order counts for a

    async def test_before_any_batch_uses_thresholds(self, session: AsyncSession) -> None:
        await refresh_customers(session, ["c"], NOW)
        c = await score(session, "c")
        assert c is not None
        # default thresholds: R (30, 90, 180, 270) days, F (2, 3, 5, 8), M (5000, ...)
        assert (c.recency_days, c.frequency, c.monetary_minor) == (5, 3, 2000)
        assert (c.r, c.f, c.m) == (5, 3, 1)
        assert settings.rfm_scoring == "quantile"

    async def test_empty_batch(self, session: AsyncSession) -> None:
        await refresh_customers(session, [], NOW)
        assert await rows(session) == {}


class TestLifecycle:
    """prospect → new → active → at_risk → dormant → churned, and the customer's rhythm.

    Defaults: new 30 days, at-risk min 30 days × rhythm factor 2, single-order at risk after
    90 days, dormant after 180, churned after 365.
    """

    T0 = datetime(2026, 1, 1, tzinfo=UTC)

    async def stage(self, session: AsyncSession, cid: str, days: float) -> str | None:
        await refresh_customers(session, [cid], self.T0 + timedelta(days=days))
        row = await score(session, cid)
        assert row is not None
        return row.lifecycle

    async def test_single_order_journey(self, session: AsyncSession) -> None:
        await add_customer(session, "j")
        assert await self.stage(session, "j", -1) == "prospect"
        await add_order(session, "j", self.T0, 100)
        journey = [
            (0, "new"),
            (30, "new"),
            (30.01, "active"),
            (90, "active"),
            (90.01, "at_risk"),
            (180.01, "dormant"),
            (365, "dormant"),
            (365.01, "churned"),
        ]
        assert [(d, await self.stage(session, "j", d)) for d, _ in journey] == journey

    async def test_changed_at_moves_only_with_the_stage(self, session: AsyncSession) -> None:
        await add_customer(session, "j")
        await add_order(session, "j", self.T0, 100)
        await self.stage(session, "j", 1)
        await self.stage(session, "j", 2)
        row = await score(session, "j")
        assert row is not None and row.lifecycle_changed_at == self.T0 + timedelta(days=1)
        await self.stage(session, "j", 40)
        row = await score(session, "j")
        assert row is not None and row.lifecycle_changed_at == self.T0 + timedelta(days=40)

    async def test_fast_rhythm_uses_the_floor(self, session: AsyncSession) -> None:
        # every 10 days: 2 × 10 = 20 < 30, so at risk after 30 days
        await add_customer(session, "q")
        for d in (0, 10, 20):
            await add_order(session, "q", self.T0 + timedelta(days=d), 100)
        assert await self.stage(session, "q", 20 + 29) == "active"
        assert await self.stage(session, "q", 20 + 30.01) == "at_risk"

    async def test_slow_rhythm_waits_longer(self, session: AsyncSession) -> None:
        # every 40 days: at risk only after 2 × 40 = 80 days, not the 30-day floor
        await add_customer(session, "s")
        for d in (0, 40, 80):
            await add_order(session, "s", self.T0 + timedelta(days=d), 100)
        assert await self.stage(session, "s", 80 + 79) == "active"
        assert await self.stage(session, "s", 80 + 80.01) == "at_risk"
        assert await self.stage(session, "s", 80 + 180.01) == "dormant"

    async def test_restage_without_orders_changing(self, session: AsyncSession) -> None:
        from crm_segment.lifecycle.service import restage

        await add_customer(session, "j")
        await add_order(session, "j", self.T0, 100)
        await refresh_customers(session, ["j"], self.T0)
        assert await restage(session, ["j"], self.T0 + timedelta(days=10)) == []
        assert await restage(session, None, self.T0 + timedelta(days=100)) == ["j"]
        row = await score(session, "j")
        assert row is not None and row.lifecycle == "at_risk"

    async def test_thresholds_are_settings(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "lifecycle_new_days", 5)
        monkeypatch.setattr(settings, "lifecycle_single_order_at_risk_days", 10)
        await add_customer(session, "j")
        await add_order(session, "j", self.T0, 100)
        assert await self.stage(session, "j", 6) == "active"
        assert await self.stage(session, "j", 11) == "at_risk"
