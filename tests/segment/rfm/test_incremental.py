"""The scheduled daily run is incremental and must leave exactly what a full run would.

A simulated shop lives through a few weeks: each day orders arrive (some backdated, some for
customers segment does not know yet), orders are cancelled and refunded, customers sign up and
are merged, the evaluator re-evaluates part of the queue, time-relative re-evaluations are
scheduled; then the daily run (``full=False``) runs. After each daily run a full run over the
same day, inside a savepoint, must find nothing to write and compute the same boundaries.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.evaluation.queue import enqueue
from crm_segment.models import Customer, CustomerScore, EvaluationQueue, Order, RfmBoundaries
from crm_segment.projections.reroot import reroot
from crm_segment.rfm import service
from crm_segment.rfm.repository import current_recency
from crm_segment.scores.service import refresh_customers
from tests.segment.rfm.factories import add_customer, add_order
from tests.segment.rfm.fixtures import AS_OF, NOW, day

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
WINDOW = 90  # short, so that orders leave it every day
SEEDS = 4


async def snapshot(session: AsyncSession, as_of: date) -> dict[str, tuple[Any, ...]]:
    """Every score row as a reader sees it on ``as_of`` (recency as of that day)."""
    s = CustomerScore
    stmt = select(
        s.customer_external_id,
        s.first_order_at,
        s.last_order_at,
        s.orders_count,
        s.revenue_minor,
        current_recency(as_of),
        s.frequency,
        s.monetary_minor,
        s.r,
        s.f,
        s.m,
        s.rfm_score,
        s.rfm_group,
        s.lifecycle,
    )
    return {row[0]: tuple(row[1:]) for row in (await session.execute(stmt)).all()}


async def boundaries(session: AsyncSession) -> tuple[Any, ...]:
    stored = await session.get(RfmBoundaries, 1, populate_existing=True)
    assert stored is not None
    return stored.as_of, stored.customers, stored.boundaries


async def full_run_agrees(session: AsyncSession, as_of: date, now: datetime, days: int) -> int:
    """A full run over the same day, inside a savepoint, finds nothing to write and computes
    the same boundaries as the run before it; the customers it scored."""
    after = await snapshot(session, as_of), await boundaries(session)
    async with session.begin_nested() as savepoint:
        full = await service.recompute(session, as_of=as_of, window_days=days, now=now)
        assert (full["full"], full["rows_written"], full["rows_deleted"]) == (True, 0, 0)
        assert (await snapshot(session, as_of), await boundaries(session)) == after
        await savepoint.rollback()
    scored: int = full["customers_scored"]
    return scored


class Shop:
    """A random shop and the changes of its days, applied as the projections apply them."""

    def __init__(self, session: AsyncSession, rng: random.Random) -> None:
        self.session = session
        self.rng = rng
        self.customers: list[str] = []
        self.orders: list[Order] = []
        self.seq = 0

    async def customer(self) -> str:
        self.seq += 1
        cid = f"c{self.seq}"
        await add_customer(self.session, cid)
        self.customers.append(cid)
        return cid

    async def order(self, cid: str, at: datetime, history: bool = False) -> None:
        total = self.rng.choice([500, 1200, 1200, 3000, 9900, 25000])
        root = (await self.session.get(Customer, cid)) if cid in self.customers else None
        fate = self.rng.random() if history else 1.0  # some old orders never counted
        self.orders.append(
            await add_order(
                self.session,
                cid,
                at,
                total,
                root=root.root_external_id if root else None,
                status="cancelled" if fate < 0.1 else "delivered",
                refunded_minor=total if fate < 0.2 else total // 3 if fate < 0.3 else 0,
                fully_refunded=fate < 0.2,
            )
        )

    async def history(self, customers: int, now: datetime) -> None:
        for _ in range(customers):
            cid = await self.customer()
            for _ in range(self.rng.choice([0, 1, 1, 2, 3, 6, 12])):
                at = now - timedelta(hours=self.rng.randrange(1, 24 * 120))
                await self.order(cid, at, history=True)

    async def day(self, now: datetime) -> None:
        """One day's changes, each queueing its customer as the projections do."""
        rng, session = self.rng, self.session
        touched: set[str] = set()
        for _ in range(rng.randrange(2, 6)):  # today's orders, a few arriving days late
            cid = rng.choice(self.customers)
            late = timedelta(hours=rng.choice([1, 2, 5, 30, 80]))
            await self.order(cid, now - late)
            touched.add(self.orders[-1].root_external_id)
        if rng.random() < 0.5:  # a customer segment learns of only through an order
            self.seq += 1
            stranger = f"s{self.seq}"
            await add_order(session, stranger, now - timedelta(hours=3), 4000)
            touched.add(stranger)
        for order in rng.sample(self.orders, 2):  # a cancellation and a refund
            await session.refresh(order)  # its root may have moved with a merge
            if rng.random() < 0.5:
                order.status = "cancelled"
            else:
                order.refunded_minor = order.total_minor // rng.choice([1, 2])
                order.fully_refunded = order.refunded_minor == order.total_minor
            touched.add(order.root_external_id)
        touched.add(await self.customer())  # a sign-up
        await session.flush()
        await enqueue(session, touched)
        if rng.random() < 0.4:  # a merge (reroot queues whom it concerns)
            survivor, duplicate = rng.sample(self.customers, 2)
            await session.execute(
                update(Customer)
                .where(Customer.customer_external_id == duplicate)
                .values(status="merged", merged_into_external_id=survivor)
            )
            self.customers.remove(duplicate)
            await reroot(session, [duplicate])
        for cid in rng.sample(self.customers, 3):  # time-relative re-evaluations ahead
            await enqueue(session, [cid], due_at=now + timedelta(days=3), reason="scheduled")
        await self.evaluate_some(now)

    async def evaluate_some(self, now: datetime) -> None:
        """The evaluator takes part of what is due (the rest waits for the next pass)."""
        due = list(
            (
                await self.session.execute(
                    select(EvaluationQueue.customer_external_id)
                    .where(EvaluationQueue.due_at <= now, EvaluationQueue.reason != "scheduled")
                    .order_by(EvaluationQueue.customer_external_id)
                )
            ).scalars()
        )
        taken = self.rng.sample(due, len(due) // 2)
        await refresh_customers(self.session, taken, now)
        await self.session.execute(
            delete(EvaluationQueue).where(EvaluationQueue.customer_external_id.in_(taken))
        )


@pytest.mark.parametrize(
    ("seed", "scoring"),
    [*((seed, "quantile") for seed in range(SEEDS)), (SEEDS, "thresholds")],
)
async def test_daily_runs_equal_full_runs(
    session: AsyncSession, seed: int, scoring: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "rfm_scoring", scoring)
    # thresholds within reach of this shop's customers (days, orders, minor units)
    monkeypatch.setattr(settings, "rfm_recency_thresholds", (7, 20, 40, 70))
    monkeypatch.setattr(settings, "rfm_frequency_thresholds", (2, 3, 4, 6))
    monkeypatch.setattr(settings, "rfm_monetary_thresholds", (1_000, 3_000, 10_000, 30_000))
    shop = Shop(session, random.Random(seed))
    now = START
    await shop.history(40, now)
    first = await service.recompute(session, as_of=None, window_days=WINDOW, now=now, full=False)
    assert first["full"] is True  # no batch ran before
    # days between runs: 1 (the schedule), 2-3 (a missed run), 9 (beyond the catch-up: full)
    for gap in (1, 1, 2, 1, 3, 1, 9, 1, 1):
        for step in range(gap):
            await shop.day(now + timedelta(days=step, hours=2))
        now += timedelta(days=gap)
        as_of = now.date()
        daily = await service.recompute(
            session, as_of=None, window_days=WINDOW, now=now, full=False
        )
        assert daily["full"] is (gap > service.INCREMENTAL_MAX_DAYS)
        scored = await full_run_agrees(session, as_of, now, WINDOW)
        assert daily["customers_scored"] == scored > 0


@pytest.mark.usefixtures("shop")
async def test_a_window_of_another_length_or_an_earlier_day_is_a_full_run(
    session: AsyncSession,
) -> None:
    await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
    later = NOW + timedelta(days=1)
    other = await service.recompute(session, as_of=None, window_days=30, now=later, full=False)
    assert other["full"] is True
    earlier = await service.recompute(
        session, as_of=AS_OF - timedelta(days=1), window_days=30, now=later, full=False
    )
    assert earlier["full"] is True  # a day before today: refreshed rows may be newer
    daily = await service.recompute(session, as_of=None, window_days=30, now=later, full=False)
    assert daily["full"] is False


@pytest.mark.usefixtures("shop")
async def test_the_daily_run_reads_only_the_customers_whose_window_moved(
    session: AsyncSession,
) -> None:
    await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
    await session.execute(delete(EvaluationQueue))
    later = NOW + timedelta(days=1)
    daily = await service.recompute(session, as_of=None, window_days=365, now=later, full=False)
    # f's only qualifying order (2025-12-01) left the window: taken out of f's row; h's
    # 2026-12-01 order entered it: h is recomputed; nobody else's orders moved, nothing queued
    assert daily["full"] is False
    assert (daily["customers_adjusted"], daily["customers_recomputed"]) == (1, 1)
    got = {
        s.customer_external_id: s for s in (await session.execute(select(CustomerScore))).scalars()
    }
    assert (got["f"].frequency, got["f"].r, got["f"].rfm_group) == (None, None, None)
    assert got["h"].frequency == 2


@pytest.mark.usefixtures("shop")
async def test_orders_that_never_counted_leave_the_window_without_a_trace(
    session: AsyncSession,
) -> None:
    await add_customer(session, "k")
    await add_order(session, "k", day(2025, 12, 1, 10), 100)
    await add_order(session, "k", day(2025, 12, 1, 11), 500, status="cancelled")
    await add_order(
        session, "k", day(2025, 12, 1, 12), 700, refunded_minor=700, fully_refunded=True
    )
    await add_order(session, "k", day(2025, 12, 1, 13), 900, refunded_minor=300)
    await add_order(session, "k", day(2026, 6, 1), 200)
    await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
    await session.execute(delete(EvaluationQueue))
    next_day, later = AS_OF + timedelta(days=1), NOW + timedelta(days=1)
    daily = await service.recompute(session, as_of=None, window_days=365, now=later, full=False)
    assert daily["full"] is False and daily["customers_recomputed"] == 1  # h, see below
    k = await session.get(CustomerScore, "k", populate_existing=True)
    assert k is not None and (k.frequency, k.monetary_minor, k.orders_count) == (1, 200, 3)
    await full_run_agrees(session, next_day, later, 365)


@pytest.mark.usefixtures("shop")
async def test_an_order_is_taken_out_once_when_the_evaluator_already_did(
    session: AsyncSession,
) -> None:
    await add_customer(session, "k")
    await add_order(session, "k", day(2025, 12, 1, 10), 100)
    await add_order(session, "k", day(2025, 12, 2, 10), 50)
    await add_order(session, "k", day(2026, 5, 1), 300)
    await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
    await session.execute(delete(EvaluationQueue))
    # the next day the evaluator refreshes k (say, a tag changed): the 12-01 order has left
    await refresh_customers(session, ["k"], NOW + timedelta(days=1))
    k = await session.get(CustomerScore, "k", populate_existing=True)
    assert k is not None and (k.frequency, k.rfm_as_of) == (2, AS_OF + timedelta(days=1))
    # a day later the batch (last run two days ago) sees both orders in the days the window
    # moved over, but only the 12-02 one is still in k's row
    later, as_of = NOW + timedelta(days=2), AS_OF + timedelta(days=2)
    daily = await service.recompute(session, as_of=None, window_days=365, now=later, full=False)
    assert daily["full"] is False
    await session.refresh(k)
    assert (k.frequency, k.monetary_minor, k.rfm_as_of) == (1, 300, as_of)
    await full_run_agrees(session, as_of, later, 365)


@pytest.mark.usefixtures("shop")
async def test_a_queued_customer_is_recomputed_not_adjusted(session: AsyncSession) -> None:
    await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
    await session.execute(delete(EvaluationQueue))
    await enqueue(session, ["f"], due_at=NOW)  # f's only order leaves the window tomorrow
    later = NOW + timedelta(days=1)
    daily = await service.recompute(session, as_of=None, window_days=365, now=later, full=False)
    assert (daily["customers_adjusted"], daily["customers_recomputed"]) == (0, 2)  # f and h
    await full_run_agrees(session, AS_OF + timedelta(days=1), later, 365)
