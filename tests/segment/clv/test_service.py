"""Calibration data from projected orders, the ``clv_fit`` job, predictions and the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.clv import bgnbd, repository, service
from crm_segment.clv.errors import FitFailed
from crm_segment.clv.jobs import run_fit
from crm_segment.clv.lifetime_value import discounted_clv
from crm_segment.jobs import registry
from crm_segment.models import CustomerScore, ModelFit, Order
from tests.segment.clv.factories import add_customer, add_order, add_orders, order_row

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def simulated_orders(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Orders of ``n`` customers drawn from a BG/NBD process (weekly rates ~ Gamma(2, 0.25),
    dropout after each purchase ~ Beta(1, 4)), first purchases over the last year."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rate = rng.gamma(2.0, 0.25)  # purchases per week
        dropout = rng.beta(1.0, 4.0)
        spend = rng.lognormal(np.log(5000), 0.4)
        start = NOW - timedelta(weeks=float(rng.uniform(4, 52)))
        when = start
        while when <= NOW:
            rows.append(order_row(f"sim-{i}", when, int(rng.gamma(10, spend / 10))))
            if rng.random() < dropout:
                break
            when += timedelta(weeks=float(rng.exponential(1 / rate)))
    return rows


class TestCalibration:
    async def test_hand_computed(self, session: AsyncSession) -> None:
        await add_customer(session, "c1")
        first = NOW - 70 * DAY
        await add_order(session, "c1", first, 1000)
        await add_order(session, "c1", first + 14 * DAY, 3000, refunded_minor=500)
        await add_order(session, "c1", first + 14 * DAY + timedelta(hours=1), 1000)  # same day
        await add_order(session, "c1", first + 28 * DAY, 4000)
        await add_order(session, "c1", first + 35 * DAY, 9000, status="cancelled")
        await add_order(
            session, "c1", first + 42 * DAY, 9000, refunded_minor=9000, fully_refunded=True
        )
        await add_order(session, "c1", NOW + DAY, 9000)  # after now
        data = await service.calibration(session, ["c1"], NOW)
        assert data.ids == ["c1"]
        assert data.x.tolist() == [2.0]  # two repeat purchase days
        assert data.t_x.tolist() == [4.0]  # 28 days
        assert data.T.tolist() == [10.0]  # 70 days
        assert data.zbar.tolist() == [(2500 + 1000 + 4000) / 2]

    async def test_merged_duplicates_count_for_the_survivor(self, session: AsyncSession) -> None:
        await add_customer(session, "survivor")
        await add_customer(session, "dup", status="merged", root="survivor")
        await add_order(session, "survivor", NOW - 10 * DAY, 1000)
        await add_order(session, "dup", NOW - 3 * DAY, 2000, root="survivor")
        await add_order(session, "gone", NOW - 3 * DAY, 2000)
        await add_customer(session, "gone", status="erased")
        data = await service.calibration(session, None, NOW)
        assert data.ids == ["survivor"]
        assert (data.x[0], data.zbar[0]) == (1.0, 2000.0)

    async def test_single_purchase(self, session: AsyncSession) -> None:
        await add_order(session, "one", NOW - 7 * DAY, 1000)  # no customer row yet: counted
        data = await service.calibration(session, ["one"], NOW)
        assert (data.x[0], data.t_x[0], data.T[0], data.zbar[0]) == (0.0, 0.0, 1.0, 0.0)


class TestFitJob:
    async def test_registered(self) -> None:
        assert registry.handler("clv_fit") is run_fit

    async def test_not_enough_data_fails_and_keeps_the_previous_fit(
        self, session: AsyncSession
    ) -> None:
        rows = [order_row(f"c{i}", NOW - (i + 5) * DAY, 1000) for i in range(30)]
        rows += [order_row(f"c{i}", NOW - DAY, 1000) for i in range(5)]
        await add_orders(session, rows)
        with pytest.raises(FitFailed, match="5 customers with repeat purchases.*at least 20"):
            await run_fit(session, {"now": NOW.isoformat()})
        assert await session.scalar(select(func.count()).select_from(ModelFit)) == 0

    async def test_a_failed_refit_keeps_the_previous_fit(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=6))
        await run_fit(session, {"now": NOW.isoformat()})
        before = [(f.id, f.params) for f in await repository.latest_fits(session)]
        await session.execute(update(Order).values(status="cancelled"))
        with pytest.raises(FitFailed, match="0 customers with repeat purchases"):
            await run_fit(session, {"now": NOW.isoformat()})
        after = [(f.id, f.params) for f in await repository.latest_fits(session)]
        assert after == before

    async def test_fits_stores_and_predicts(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(300))
        result = await run_fit(session, {"now": NOW.isoformat()})
        assert result["customers"] == 300
        assert result["predicted"] == 300
        assert result["repeat_customers"] >= 20
        fits = {f.kind: f for f in (await session.execute(select(ModelFit))).scalars()}
        assert set(fits) == {"bgnbd", "gamma_gamma"}
        bg = fits["bgnbd"]
        assert set(bg.params) == {"r", "alpha", "a", "b"}
        assert bg.diagnostics["converged"] is True
        assert bg.diagnostics["time_unit"] == "week"
        assert bg.diagnostics["as_of"] == NOW.isoformat()
        assert bg.customers == 300
        gg = fits["gamma_gamma"]
        assert set(gg.params) == {"p", "q", "gamma"}
        assert gg.params["q"] > 1
        assert gg.customers == result["repeat_customers"]
        # the simulated mean spend is about 5000 minor units
        mean_spend = gg.params["p"] * gg.params["gamma"] / (gg.params["q"] - 1)
        assert 3000 < mean_spend < 8000

        scores = (await session.execute(select(CustomerScore))).scalars().all()
        assert len(scores) == 300
        for s in scores:
            # stored rounded: probabilities to 4 decimals, expected purchases to 3
            assert s.p_alive is not None and 0 <= s.p_alive <= 1
            assert s.p_alive == round(s.p_alive, 4)
            assert s.churn_probability is not None
            assert s.churn_probability == pytest.approx(1 - s.p_alive)
            assert s.churn_probability == round(s.churn_probability, 4)
            assert s.expected_purchases_90d is not None and s.expected_purchases_90d >= 0
            assert s.expected_purchases_90d == round(s.expected_purchases_90d, 3)
            assert s.clv_12m_minor is not None and s.clv_12m_minor >= 0
            assert s.computed_at == NOW
        data = await service.calibration(session, None, NOW)
        one_timers = {i for i, x in zip(data.ids, data.x, strict=True) if x == 0}
        assert one_timers
        assert all(s.p_alive == 1.0 for s in scores if s.customer_external_id in one_timers)

    async def test_a_refit_is_the_latest(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=1))
        await run_fit(session, {"now": NOW.isoformat()})
        await run_fit(session, {"now": (NOW + 30 * DAY).isoformat()})
        latest = await repository.latest_fits(session)
        assert [f.kind for f in latest] == ["bgnbd", "gamma_gamma"]
        assert all(f.diagnostics["as_of"] == (NOW + 30 * DAY).isoformat() for f in latest)

    async def test_naive_now_is_refused(self, session: AsyncSession) -> None:
        with pytest.raises(ValueError, match="time zone"):
            await run_fit(session, {"now": "2026-11-01T12:00:00"})


class TestPredictCustomers:
    async def test_nothing_before_the_first_fit(self, session: AsyncSession) -> None:
        await add_order(session, "c1", NOW - DAY, 1000)
        assert await service.predict_customers(session, None, NOW) == 0
        assert await session.scalar(select(func.count()).select_from(CustomerScore)) == 0

    async def test_a_batch_updates_only_its_customers(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=2))
        await run_fit(session, {"now": NOW.isoformat()})
        later = NOW + 60 * DAY
        assert await service.predict_customers(session, [], later) == 0
        written = await service.predict_customers(session, ["sim-1", "sim-2", "nobody"], later)
        assert written == 2
        rows = (
            await session.execute(
                select(CustomerScore.customer_external_id, CustomerScore.computed_at)
                .where(CustomerScore.computed_at == later)
                .execution_options(populate_existing=True)
            )
        ).all()
        assert sorted(r[0] for r in rows) == ["sim-1", "sim-2"]

    async def test_silence_lowers_p_alive_and_a_new_order_raises_it(
        self, session: AsyncSession
    ) -> None:
        await add_orders(session, simulated_orders(200, seed=3))
        await add_orders(
            session, [order_row("loyal", NOW - w * 7 * DAY, 5000) for w in range(1, 30, 2)]
        )
        await run_fit(session, {"now": NOW.isoformat()})

        async def p_alive() -> float | None:
            return await session.scalar(
                select(CustomerScore.p_alive)
                .where(CustomerScore.customer_external_id == "loyal")
                .execution_options(populate_existing=True)
            )

        before = await p_alive()
        later = NOW + 20 * 7 * DAY
        await service.predict_customers(session, ["loyal"], later)
        silent = await p_alive()
        assert before is not None and silent is not None and silent < before
        await add_order(session, "loyal", later - DAY, 5000)
        await service.predict_customers(session, ["loyal"], later)
        back = await p_alive()
        assert back is not None and back > silent

    async def test_cancelled_only_customers_lose_their_prediction(
        self, session: AsyncSession
    ) -> None:
        await add_orders(session, simulated_orders(200, seed=4))
        await add_order(session, "brief", NOW - 5 * DAY, 1000, order_id="brief-1")
        await run_fit(session, {"now": NOW.isoformat()})
        await session.execute(
            update(Order).where(Order.order_external_id == "brief-1").values(status="cancelled")
        )
        assert await service.predict_customers(session, ["brief"], NOW) == 0
        score = await session.scalar(
            select(CustomerScore)
            .where(CustomerScore.customer_external_id == "brief")
            .execution_options(populate_existing=True)
        )
        assert score is not None
        assert (score.p_alive, score.churn_probability, score.clv_12m_minor) == (None, None, None)


class TestStoredPredictions:
    async def scores(self, session: AsyncSession) -> dict[str, tuple[Any, ...]]:
        rows = (
            await session.execute(
                select(
                    CustomerScore.customer_external_id,
                    CustomerScore.p_alive,
                    CustomerScore.churn_probability,
                    CustomerScore.expected_purchases_90d,
                    CustomerScore.clv_12m_minor,
                    CustomerScore.computed_at,
                ).execution_options(populate_existing=True)
            )
        ).all()
        return {r[0]: tuple(r[1:]) for r in rows}

    async def test_the_models_rounded(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=7))
        await run_fit(session, {"now": NOW.isoformat()})
        fits = {f.kind: f for f in await repository.latest_fits(session)}
        bg, gg = service._bg_params(fits["bgnbd"]), service._gg_params(fits["gamma_gamma"])
        later = NOW + 10 * DAY
        await service.predict_customers(session, None, later)
        data = await service.calibration(session, None, later)
        alive = bgnbd.p_alive(bg, data.x, data.t_x, data.T)
        expected = bgnbd.expected_purchases(bg, 90 / 7, data.x, data.t_x, data.T)
        clv = discounted_clv(bg, gg, data.x, data.t_x, data.T, data.zbar)
        scores = await self.scores(session)
        for i, cid in enumerate(data.ids):
            p, churn, e, value, _ = scores[cid]
            assert p == round(float(alive[i]), 4)
            assert churn == round(1 - p, 4)
            assert e == round(float(expected[i]), 3)
            assert abs(value - clv[i]) <= 0.5 + 1e-6

    async def test_unchanged_rows_are_not_rewritten(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=8))
        await run_fit(session, {"now": NOW.isoformat()})
        before = await self.scores(session)
        # the same UTC day: same x, t_x, T, so the same predictions
        same_day = NOW + timedelta(hours=3)
        await add_order(session, "sim-3", same_day - timedelta(hours=1), 7000)
        assert await service.predict_customers(session, None, same_day) == 200
        after = await self.scores(session)
        assert after["sim-3"][-1] == same_day
        assert after["sim-3"][:-1] != before["sim-3"][:-1]
        unchanged = {cid for cid in after if after[cid][-1] == NOW}
        assert unchanged == set(after) - {"sim-3"}
        assert all(after[cid] == before[cid] for cid in unchanged)

    async def test_one_customer_gets_what_the_batch_gives(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=9))
        await run_fit(session, {"now": NOW.isoformat()})
        later = NOW + 45 * DAY
        await service.predict_customers(session, None, later)
        batch = await self.scores(session)
        await session.execute(
            update(CustomerScore).values(
                p_alive=None,
                churn_probability=None,
                expected_purchases_90d=None,
                clv_12m_minor=None,
            )
        )
        ids = ["sim-0", "sim-7", "sim-42", "sim-199"]
        assert await service.predict_customers(session, ids, later + timedelta(hours=1)) == 4
        single = await self.scores(session)
        for cid in ids:
            assert single[cid][:-1] == batch[cid][:-1]
        assert all(single[cid][0] is None for cid in set(single) - set(ids))

    async def test_everyone_clears_those_without_a_purchase(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=10))
        await add_customer(session, "leaving")
        await add_order(session, "leaving", NOW - 20 * DAY, 3000, order_id="leaving-1")
        await add_order(session, "leaving", NOW - 5 * DAY, 3000, order_id="leaving-2")
        await run_fit(session, {"now": NOW.isoformat()})
        assert (await self.scores(session))["leaving"][0] is not None
        await session.execute(
            update(Order).where(Order.root_external_id == "leaving").values(status="cancelled")
        )
        assert await service.predict_customers(session, None, NOW) == 200
        cleared = (await self.scores(session))["leaving"]
        assert cleared == (None, None, None, None, NOW)

    async def test_rows_are_created_for_customers_without_one(self, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=11))
        await run_fit(session, {"now": NOW.isoformat()})
        await session.execute(
            delete(CustomerScore).where(CustomerScore.customer_external_id.in_(["sim-1", "sim-2"]))
        )
        later = NOW + 7 * DAY
        await service.predict_customers(session, None, later)
        scores = await self.scores(session)
        assert len(scores) == 200
        assert scores["sim-1"][0] is not None and scores["sim-1"][-1] == later
        assert all(s[0] is not None for s in scores.values())


class TestEndpoints:
    async def test_no_fit_yet(self, client: AsyncClient) -> None:
        response = await client.get("/v1/models")
        assert response.status_code == 200
        assert response.json() == {"items": []}

    async def test_latest_fits(self, client: AsyncClient, session: AsyncSession) -> None:
        await add_orders(session, simulated_orders(200, seed=5))
        await run_fit(session, {"now": NOW.isoformat()})
        body = (await client.get("/v1/models")).json()
        assert [i["kind"] for i in body["items"]] == ["bgnbd", "gamma_gamma"]
        assert body["items"][0]["diagnostics"]["converged"] is True
        assert set(body["items"][0]["params"]) == {"r", "alpha", "a", "b"}

    async def test_queue_a_fit(self, client: AsyncClient) -> None:
        response = await client.post("/v1/models/fit")
        assert response.status_code == 202
        body = response.json()
        assert (body["kind"], body["status"]) == ("clv_fit", "queued")
        job = await client.get(f"/v1/jobs/{body['id']}")
        assert job.json()["status"] == "queued"

    async def test_scopes(self, anonymous: AsyncClient) -> None:
        assert (await anonymous.get("/v1/models")).status_code == 401
        assert (await anonymous.post("/v1/models/fit")).status_code == 401
