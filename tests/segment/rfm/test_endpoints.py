"""``POST /v1/rfm/recompute``, the ``rfm`` job handler and ``GET /v1/rfm/summary``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.jobs.registry import handler
from crm_segment.models import CustomerScore, Job
from crm_segment.rfm import service
from crm_segment.rfm.schemas import RecomputeRequest
from tests.segment.rfm.fixtures import AS_OF, NOW


class TestRecompute:
    async def test_queues_a_job(self, client: AsyncClient, session: AsyncSession) -> None:
        response = await client.post(
            "/v1/rfm/recompute", json={"as_of": "2026-11-30", "window_days": 90}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["kind"], body["status"]) == ("rfm", "queued")
        assert body["params"] == {"as_of": "2026-11-30", "window_days": 90}
        job = await session.get(Job, body["id"])
        assert job is not None and job.status == "queued"

    async def test_defaults(self, client: AsyncClient) -> None:
        response = await client.post("/v1/rfm/recompute", json={})
        assert response.status_code == 202
        assert response.json()["params"] == {}
        # incremental unless asked: the same result as a full run (test_incremental.py)
        assert RecomputeRequest.model_validate({}).full is False
        assert RecomputeRequest.model_validate({"full": True}).full is True

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"window_days": 0}, "body.window_days"),
            ({"window_days": 3651}, "body.window_days"),
            ({"window_days": "many"}, "body.window_days"),
            ({"as_of": "yesterday"}, "body.as_of"),
            ({"as_of": "2999-01-01"}, "body.as_of"),
            ({"other": 1}, "body.other"),
        ],
    )
    async def test_invalid(self, client: AsyncClient, body: dict[str, object], field: str) -> None:
        response = await client.post("/v1/rfm/recompute", json=body)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]

    async def test_needs_write_scope(self, anonymous: AsyncClient) -> None:
        assert (await anonymous.post("/v1/rfm/recompute", json={})).status_code == 401


@pytest.mark.usefixtures("shop")
class TestJobHandler:
    async def test_runs_the_batch(self, session: AsyncSession) -> None:
        result = await handler("rfm")(session, {"as_of": AS_OF.isoformat(), "window_days": 365})
        assert result["customers_scored"] == 9
        assert result["as_of"] == "2026-11-30" and result["method"] == "quantile"
        c = await session.get(CustomerScore, "c", populate_existing=True)
        assert c is not None and (c.r, c.f, c.m) == (4, 5, 5)

    async def test_default_as_of_is_today(self, session: AsyncSession) -> None:
        result = await handler("rfm")(session, {})
        assert result["as_of"] == datetime.now(UTC).date().isoformat()
        assert result["window_days"] == 365


@pytest.mark.usefixtures("shop")
class TestSummary:
    async def test_empty(self, client: AsyncClient) -> None:
        response = await client.get("/v1/rfm/summary")
        assert response.status_code == 200
        body = response.json()
        assert (body["as_of"], body["customers"], body["revenue_minor"]) == (None, 0, 0)
        assert body["top_20_percent_revenue_share"] == 0.0
        assert len(body["groups"]) == 10 and all(g["customers"] == 0 for g in body["groups"])

    async def test_numbers(self, client: AsyncClient, session: AsyncSession) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        body = (await client.get("/v1/rfm/summary")).json()
        assert (body["as_of"], body["window_days"], body["method"]) == (
            "2026-11-30",
            365,
            "quantile",
        )
        # monetary: a 310, b 50, c 2000, d 500, e 300, f 70, g 300, h 100, z 80 → 3710
        assert (body["customers"], body["revenue_minor"]) == (9, 3710)
        # top 20 % of 9 = ceil(1.8) = 2 customers: c 2000 + d 500
        assert body["top_20_percent_revenue_share"] == pytest.approx(2500 / 3710)
        groups = {g["group"]: g for g in body["groups"]}
        champions = groups["champions"]  # a (0, 3, 310; 5 5 4) and b (0, 1, 50; 5 4 1)
        assert (champions["customers"], champions["revenue_minor"]) == (2, 360)
        assert champions["revenue_share"] == pytest.approx(360 / 3710)
        assert (champions["avg_recency_days"], champions["avg_frequency"]) == (0.0, 2.0)
        assert champions["avg_monetary_minor"] == 180.0
        assert (champions["avg_r"], champions["avg_f"], champions["avg_m"]) == (5.0, 4.5, 2.5)
        loyal = groups["loyal"]  # c 2000, d 500, g 300, h 100
        assert (loyal["customers"], loyal["revenue_minor"]) == (4, 2900)
        assert loyal["avg_recency_days"] == pytest.approx((5 + 60 + 1 + 29) / 4)
        at_risk = groups["at_risk"]  # e 300, f 70, z 80
        assert (at_risk["customers"], at_risk["revenue_minor"]) == (3, 450)
        assert groups["hibernating"] == {
            "group": "hibernating",
            "customers": 0,
            "revenue_minor": 0,
            "revenue_share": 0.0,
            "avg_recency_days": None,
            "avg_frequency": None,
            "avg_monetary_minor": None,
            "avg_r": None,
            "avg_f": None,
            "avg_m": None,
        }

    async def test_prospects_are_not_counted(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        rows = (await session.execute(select(CustomerScore.customer_external_id))).scalars()
        assert "p" in set(rows)
        body = (await client.get("/v1/rfm/summary")).json()
        assert body["customers"] == 9  # the prospect has a row but no group
