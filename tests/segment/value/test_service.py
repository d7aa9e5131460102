"""The value score: purchase value, engagement and social contribution on a log scale."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.models import CustomerScore
from crm_segment.value.service import score_customers
from tests.segment.clv.factories import (
    add_customer,
    add_interactions,
    add_order,
    interaction_row,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
DAY = timedelta(days=1)


def s(value: float, ref: int) -> float:
    return min(1.0, math.log1p(value) / math.log1p(ref))


def expected(purchase: float = 0, engagement: float = 0, social: float = 0) -> int:
    """The score under the default settings (weights 0.6 / 0.3 / 0.1, refs 100000 / 100 / 5)."""
    return round(100 * (0.6 * s(purchase, 100_000) + 0.3 * s(engagement, 100) + 0.1 * s(social, 5)))


async def scores(session: AsyncSession) -> dict[str, int | None]:
    rows = await session.execute(
        select(CustomerScore.customer_external_id, CustomerScore.value_score).execution_options(
            populate_existing=True
        )
    )
    return dict(rows.tuples().all())


class TestScore:
    async def test_nothing_scores_zero(self, session: AsyncSession) -> None:
        await add_customer(session, "idle")
        assert await score_customers(session, ["idle"], NOW) == 1
        assert await scores(session) == {"idle": 0}

    async def test_components(self, session: AsyncSession) -> None:
        await add_customer(session, "buyer")
        await add_order(session, "buyer", NOW - 10 * DAY, 30_000, refunded_minor=5_000)
        await add_order(session, "buyer", NOW - 5 * DAY, 9_000, status="cancelled")
        await add_order(session, "buyer", NOW + DAY, 9_000)  # after now
        await add_interactions(
            session,
            [
                interaction_row("buyer", TODAY, "product_view", 7),
                interaction_row("buyer", TODAY - 3 * DAY, "app_open", 2),
                interaction_row("buyer", TODAY - 89 * DAY, "sign_in", 1),
                interaction_row("buyer", TODAY - 10 * DAY, "page_view", 4, category="shoes"),
                interaction_row("buyer", TODAY - 90 * DAY, "product_view", 50),  # too old
                interaction_row("buyer", TODAY + DAY, "product_view", 50),  # after now
                interaction_row("buyer", TODAY, "add_to_cart", 50),  # not engagement
                interaction_row("buyer", TODAY - 400 * DAY, "review_submitted", 2),
                interaction_row("buyer", TODAY - 30 * DAY, "referral_converted", 1),
            ],
        )
        await score_customers(session, ["buyer"], NOW)
        # social: two reviews (ever) and one referral that brought a customer
        assert (await scores(session))["buyer"] == expected(25_000, 14, 3)

    async def test_predicted_clv_counts_as_purchase_value(self, session: AsyncSession) -> None:
        await add_order(session, "c", NOW - 10 * DAY, 10_000)
        await session.execute(
            insert(CustomerScore).values(customer_external_id="c", clv_12m_minor=20_000)
        )
        await score_customers(session, ["c"], NOW)
        assert (await scores(session))["c"] == expected(30_000)

    async def test_saturates_at_the_reference(self, session: AsyncSession) -> None:
        await add_order(session, "whale", NOW - DAY, 10**9)
        await add_interactions(
            session,
            [
                interaction_row("whale", TODAY, "product_view", 10_000),
                interaction_row("whale", TODAY, "review_submitted", 100),
            ],
        )
        await score_customers(session, ["whale"], NOW)
        assert (await scores(session))["whale"] == 100

    async def test_weights_are_settings(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await add_order(session, "c", NOW - DAY, 10**9)
        await add_interactions(session, [interaction_row("c", TODAY, "app_open", 10)])
        monkeypatch.setattr(settings, "value_weight_purchase", 0.0)
        monkeypatch.setattr(settings, "value_weight_engagement", 2.0)
        monkeypatch.setattr(settings, "value_weight_social", 0.0)
        await score_customers(session, ["c"], NOW)
        assert (await scores(session))["c"] == round(100 * s(10, 100))

    async def test_all_zero_weights_are_refused(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("value_weight_purchase", "value_weight_engagement", "value_weight_social"):
            monkeypatch.setattr(settings, name, 0.0)
        with pytest.raises(ValueError, match="weights"):
            await score_customers(session, ["c"], NOW)

    async def test_a_score_does_not_depend_on_other_customers(self, session: AsyncSession) -> None:
        await add_order(session, "a", NOW - DAY, 5_000)
        await score_customers(session, ["a"], NOW)
        alone = (await scores(session))["a"]
        await add_order(session, "b", NOW - DAY, 5_000_000)
        await score_customers(session, None, NOW)
        assert (await scores(session))["a"] == alone == expected(5_000)


class TestWhoIsScored:
    async def test_merges_count_for_the_survivor_and_the_duplicate_is_skipped(
        self, session: AsyncSession
    ) -> None:
        await add_customer(session, "survivor")
        await add_customer(session, "dup", status="merged", root="survivor")
        await add_order(session, "dup", NOW - DAY, 10_000, root="survivor")
        await add_interactions(
            session, [interaction_row("dup", TODAY, "review_submitted", 1, root="survivor")]
        )
        assert await score_customers(session, ["survivor", "dup"], NOW) == 1
        assert await scores(session) == {"survivor": expected(10_000, 0, 1)}

    async def test_everyone(self, session: AsyncSession) -> None:
        await add_customer(session, "idle")
        await add_customer(session, "merged", status="merged", root="idle")
        await add_order(session, "buyer", NOW - DAY, 10_000)  # no customer row yet
        await add_interactions(session, [interaction_row("browser", TODAY, "page_view", 3)])
        assert await score_customers(session, None, NOW) == 3
        assert await scores(session) == {
            "idle": 0,
            "buyer": expected(10_000),
            "browser": expected(0, 3),
        }

    async def test_a_root_with_only_orders_that_do_not_count_scores_zero(
        self, session: AsyncSession
    ) -> None:
        await add_order(session, "cancelled", NOW - DAY, 10_000, status="cancelled")
        await add_order(session, "later", NOW + DAY, 10_000)
        assert await score_customers(session, None, NOW) == 2
        assert await scores(session) == {"cancelled": 0, "later": 0}

    async def test_a_batch_touches_only_its_customers(self, session: AsyncSession) -> None:
        await add_order(session, "a", NOW - DAY, 10_000)
        await add_order(session, "b", NOW - DAY, 10_000)
        assert await score_customers(session, [], NOW) == 0
        assert await score_customers(session, ["a", "a", "nobody"], NOW) == 2
        assert await scores(session) == {"a": expected(10_000), "nobody": 0}

    async def test_rescoring_updates_the_row(self, session: AsyncSession) -> None:
        await add_order(session, "a", NOW - DAY, 10_000)
        await score_customers(session, ["a"], NOW)
        await add_order(session, "a", NOW - DAY, 90_000)
        await score_customers(session, ["a"], NOW)
        assert await scores(session) == {"a": expected(100_000)}


class TestOnlyChangesAreWritten:
    async def computed_at(self, session: AsyncSession) -> dict[str, datetime]:
        rows = await session.execute(
            select(CustomerScore.customer_external_id, CustomerScore.computed_at)
        )
        return dict(rows.tuples().all())

    async def test_an_unchanged_score_is_not_rewritten(self, session: AsyncSession) -> None:
        await add_order(session, "a", NOW - DAY, 10_000)
        await add_order(session, "b", NOW - DAY, 20_000)
        assert await score_customers(session, None, NOW) == 2
        before = await self.computed_at(session)
        later = NOW + DAY
        assert await score_customers(session, None, later) == 0
        assert await score_customers(session, ["a", "b"], later) == 0
        assert await self.computed_at(session) == before

    async def test_only_the_changed_score_is_written(self, session: AsyncSession) -> None:
        await add_order(session, "a", NOW - DAY, 10_000)
        await add_order(session, "b", NOW - DAY, 20_000)
        await score_customers(session, None, NOW)
        await add_order(session, "b", NOW - DAY, 80_000)
        later = NOW + DAY
        assert await score_customers(session, None, later) == 1
        assert await scores(session) == {"a": expected(10_000), "b": expected(100_000)}
        stamps = await self.computed_at(session)
        assert stamps["b"] == later and stamps["a"] == NOW

    async def test_a_row_without_a_value_score_gets_one(self, session: AsyncSession) -> None:
        await add_order(session, "a", NOW - DAY, 10_000)
        await session.execute(insert(CustomerScore).values(customer_external_id="a"))
        assert await score_customers(session, None, NOW) == 1
        assert await scores(session) == {"a": expected(10_000)}
