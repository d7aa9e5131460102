"""The RFM batch against the definition, computed by hand on the ``shop`` fixture.

Window: 365 days ending 2026-11-30 = [2025-12-01 00:00, 2026-12-01 00:00) UTC. Nine customers
have a qualifying order in it (n = 9); cume_dist gives each the share of the nine whose value
is as bad as or worse than its own (ties together), and score = ceil(5 × that).

Recency (days, worse first): f 364, e 182, z 152, d 60, h 29, c 5, g 1, a 0, b 0
  cume_dist 1/9 2/9 3/9 4/9 5/9 6/9 7/9 9/9 9/9 → ×5 = 0.56 1.11 1.67 2.22 2.78 3.33 3.89 5 5
  R:        1   2   2   3   3   4   4   5   5
Frequency: six customers with 1 (b e f g h z), d 2, a 3, c 3
  cume_dist 6/9 → 3.33 → F4; 7/9 → 3.89 → F4; 9/9 → F5
Monetary (worse first): b 50, f 70, z 80, h 100, e 300, g 300, a 310, d 500, c 2000
  cume_dist 1/9 2/9 3/9 4/9 6/9 6/9 7/9 8/9 9/9 → M 1 2 2 3 4 4 4 5 5
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.models import CustomerScore, EvaluationQueue, RfmBoundaries
from crm_segment.rfm import service
from crm_segment.rfm.repository import current_recency
from tests.segment.rfm.fixtures import AS_OF, NOW

# customer: (recency_days, frequency, monetary_minor, r, f, m, group)
EXPECTED: dict[str, tuple[int, int, int, int, int, int, str]] = {
    "a": (0, 3, 310, 5, 5, 4, "champions"),
    "b": (0, 1, 50, 5, 4, 1, "champions"),
    "c": (5, 3, 2000, 4, 5, 5, "loyal"),
    "d": (60, 2, 500, 3, 4, 5, "loyal"),
    "e": (182, 1, 300, 2, 4, 4, "at_risk"),
    "f": (364, 1, 70, 1, 4, 2, "at_risk"),
    "g": (1, 1, 300, 4, 4, 4, "loyal"),
    "h": (29, 1, 100, 3, 4, 3, "loyal"),
    "z": (152, 1, 80, 2, 4, 2, "at_risk"),
}


async def rows(session: AsyncSession) -> dict[str, CustomerScore]:
    """Every score row, fresh from the database."""
    stmt = select(CustomerScore).execution_options(populate_existing=True)
    return {s.customer_external_id: s for s in (await session.execute(stmt)).scalars()}


def rfm(row: CustomerScore) -> tuple[Any, ...]:
    """The RFM columns as in ``EXPECTED``."""
    return (row.recency_days, row.frequency, row.monetary_minor, row.r, row.f, row.m, row.rfm_group)


@pytest.mark.usefixtures("shop")
class TestQuantileBatch:
    async def test_scores_equal_the_definition(self, session: AsyncSession) -> None:
        result = await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        got = await rows(session)
        assert {k: rfm(v) for k, v in got.items() if k in EXPECTED} == EXPECTED
        for cid, (*_, r, f, m, _group) in EXPECTED.items():
            assert got[cid].rfm_score == f"{r}{f}{m}"
            assert got[cid].rfm_as_of == AS_OF
        assert result["customers_scored"] == 9
        assert result["as_of"] == "2026-11-30" and result["window_days"] == 365

    async def test_prospect_and_merged(self, session: AsyncSession) -> None:
        session.add(CustomerScore(customer_external_id="x", orders_count=1, revenue_minor=10))
        await session.flush()
        result = await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        got = await rows(session)
        assert set(got) == {*EXPECTED, "p"}  # x (merged into a) lost its row
        assert result["rows_deleted"] == 1
        p = got["p"]
        assert (p.rfm_score, p.r, p.recency_days, p.rfm_as_of, p.orders_count) == (
            None,
            None,
            None,
            None,
            0,
        )
        assert p.lifecycle == "prospect"

    async def test_lifetime_aggregates(self, session: AsyncSession) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        got = await rows(session)
        # e: the order before the window counts for life, not for RFM
        assert (got["e"].orders_count, got["e"].revenue_minor) == (2, 1299)
        # h: the order after as_of counts for life too
        assert (got["h"].orders_count, got["h"].revenue_minor) == (2, 800)
        assert got["h"].last_order_at == datetime(2026, 12, 1, tzinfo=UTC)
        # f: cancelled and fully refunded orders never count
        assert (got["f"].orders_count, got["f"].revenue_minor) == (1, 70)
        assert got["a"].first_order_at == datetime(2026, 11, 10, 10, tzinfo=UTC)

    async def test_boundaries_stored(self, session: AsyncSession) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        stored = await session.get(RfmBoundaries, 1)
        assert stored is not None
        assert (stored.as_of, stored.window_days, stored.method, stored.customers) == (
            AS_OF,
            365,
            "quantile",
            9,
        )
        b = stored.boundaries
        assert b["recency"]["cuts"] == [182, 60, 5, 0]  # most days that earned R2..R5
        assert b["frequency"]["cuts"] == [None, None, 1, 3]  # fewest orders that earned F2..F5
        assert b["monetary"]["cuts"] == [70, 100, 300, 500]
        assert b["monetary"]["scores"]["4"] == {"min": 300, "max": 310, "n": 3}
        assert b["frequency"]["scores"]["1"] == {"min": None, "max": None, "n": 0}

    async def test_shorter_window(self, session: AsyncSession) -> None:
        # 30 days ending 2026-11-30 start on 2026-11-01: a, b, c, g, h remain
        await service.recompute(session, as_of=AS_OF, window_days=30, now=NOW)
        got = await rows(session)
        scored = {k for k, v in got.items() if v.r is not None}
        assert scored == {"a", "b", "c", "g", "h"}
        # a: 11-30, 11-20, 11-10; c only its 11-25 order
        assert (got["a"].frequency, got["c"].frequency, got["c"].monetary_minor) == (3, 1, 1000)

    async def test_second_run_writes_only_changes(self, session: AsyncSession) -> None:
        first = await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        assert first["rows_written"] == 10
        assert first["enqueued"] == 10  # everybody got a group or a stage
        second = await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        assert (second["rows_written"], second["enqueued"], second["rows_deleted"]) == (0, 0, 0)

    async def test_next_day_rewrites_only_rows_whose_scores_moved(
        self, session: AsyncSession
    ) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        before = await rows(session)
        stamps = {
            k: (v.computed_at, v.lifecycle, v.lifecycle_changed_at) for k, v in before.items()
        }
        old_rfm = {k: rfm(v) for k, v in before.items()}
        later = NOW + timedelta(days=1)
        next_day = AS_OF + timedelta(days=1)
        result = await service.recompute(session, as_of=next_day, window_days=365, now=later)
        after = await rows(session)
        assert set(after) == set(before)
        rewritten = {k for k, v in after.items() if v.computed_at == later}
        # one more day of recency for everybody is not a reason to rewrite a row: only rows
        # whose frequency, money, scores, group or stage moved are written
        moved = {
            k
            for k in EXPECTED
            if rfm(after[k])[1:] != old_rfm[k][1:] or after[k].lifecycle != stamps[k][1]
        }
        assert rewritten == moved and result["rows_written"] == len(moved)
        assert {"f"} <= moved  # f's only order left the window
        assert len(moved) < len(EXPECTED)
        assert after["p"].computed_at == stamps["p"][0]
        # the recency read back is as of the new day for every row, rewritten or not
        current = dict(
            (
                await session.execute(
                    select(CustomerScore.customer_external_id, current_recency(next_day))
                )
            ).all()
        )
        for cid in EXPECTED:
            if cid not in ("f", "h"):  # f's order left the window, h's next one entered it
                assert current[cid] == EXPECTED[cid][0] + 1, cid
            _, stage, changed_at = stamps[cid]
            if after[cid].lifecycle == stage:  # the stage's date is kept when it did not move
                assert after[cid].lifecycle_changed_at == changed_at
            else:
                assert after[cid].lifecycle_changed_at == later

    async def test_the_daily_run_matches_a_full_run(self, session: AsyncSession) -> None:
        # the daily run starts from the stored rows (see also test_incremental.py)
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        later, next_day = NOW + timedelta(days=1), AS_OF + timedelta(days=1)
        daily = await service.recompute(
            session, as_of=next_day, window_days=365, now=later, full=False
        )
        assert daily["full"] is False
        lifetime = ("first_order_at", "last_order_at", "orders_count", "revenue_minor")

        def snapshot(got: dict[str, CustomerScore]) -> dict[str, tuple[Any, ...]]:
            return {
                k: (*rfm(v)[1:], v.lifecycle, *(getattr(v, c) for c in lifetime))
                for k, v in got.items()
            }

        after_daily = snapshot(await rows(session))
        full = await service.recompute(session, as_of=next_day, window_days=365, now=later)
        assert full["full"] is True and full["rows_written"] == 0
        assert snapshot(await rows(session)) == after_daily

    async def test_the_first_run_is_full_even_when_asked_for_a_daily_one(
        self, session: AsyncSession
    ) -> None:
        result = await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW, full=False)
        assert result["full"] is True
        assert {k: rfm(v) for k, v in (await rows(session)).items() if k in EXPECTED} == EXPECTED

    async def test_changed_groups_are_enqueued(self, session: AsyncSession) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        await session.execute(delete(EvaluationQueue))
        later = NOW + timedelta(days=1)
        # one day later every recency grows by one: same ranks, so no group changes, but
        # f's only order leaves the window (f loses its group), and stages are re-taken
        result = await service.recompute(
            session, as_of=AS_OF + timedelta(days=1), window_days=365, now=later
        )
        queued = set(
            (await session.execute(select(EvaluationQueue.customer_external_id))).scalars()
        )
        assert "f" in queued
        assert result["enqueued"] == len(queued)
        assert (await rows(session))["f"].rfm_group is None


@pytest.mark.usefixtures("shop")
class TestThresholds:
    async def test_fixed_thresholds(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "rfm_scoring", "thresholds")
        monkeypatch.setattr(settings, "rfm_recency_thresholds", (1, 30, 100, 200))
        monkeypatch.setattr(settings, "rfm_frequency_thresholds", (2, 3, 4, 5))
        monkeypatch.setattr(settings, "rfm_monetary_thresholds", (80, 100, 300, 1000))
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        got = await rows(session)
        # R: <=1 → 5, <=30 → 4, <=100 → 3, <=200 → 2, else 1
        # F: >=5 → 5, >=4 → 4, >=3 → 3, >=2 → 2, else 1
        # M: >=1000 → 5, >=300 → 4, >=100 → 3, >=80 → 2, else 1
        expected = {
            "a": (5, 3, 4),
            "b": (5, 1, 1),
            "c": (4, 3, 5),
            "d": (3, 2, 4),
            "e": (2, 1, 4),
            "f": (1, 1, 1),
            "g": (5, 1, 4),
            "h": (4, 1, 3),
            "z": (2, 1, 2),
        }
        assert {k: (got[k].r, got[k].f, got[k].m) for k in expected} == expected
        stored = await session.get(RfmBoundaries, 1)
        assert stored is not None and stored.method == "thresholds"
        assert stored.boundaries["recency"]["cuts"] == [200, 100, 30, 1]
