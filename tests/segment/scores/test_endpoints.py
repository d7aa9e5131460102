"""``GET /v1/customers/{external_id}/scores``."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import Cluster, CustomerScore
from crm_segment.rfm import service
from tests.segment.rfm.fixtures import AS_OF, NOW


@pytest.mark.usefixtures("shop")
class TestScores:
    async def test_scored_customer(self, client: AsyncClient, session: AsyncSession) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        cluster = Cluster(
            id=uuid.uuid4(),
            run_id=uuid.uuid4(),
            index=0,
            label="big spenders",
            size=1,
            description={},
        )
        session.add(cluster)
        row = await session.get(CustomerScore, "c")
        assert row is not None
        row.cluster_id = cluster.id
        row.p_alive, row.churn_probability, row.expected_purchases_90d = 0.9, 0.1, 1.5
        row.clv_12m_minor, row.value_score = 12345, 77
        await session.flush()
        response = await client.get("/v1/customers/c/scores")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["rfm"] == {
            "as_of": "2026-11-30",
            "recency_days": 5,
            "frequency": 3,
            "monetary_minor": 2000,
            "r": 4,
            "f": 5,
            "m": 5,
            "score": "455",
            "group": "loyal",
        }
        assert body["customer_external_id"] == "c" and body["survivor_external_id"] is None
        assert body["lifecycle"] == "active"
        assert body["orders"]["count"] == 3 and body["orders"]["revenue_minor"] == 2000
        assert (body["p_alive"], body["churn_probability"]) == (0.9, 0.1)
        assert (body["expected_purchases_90d"], body["clv_12m_minor"]) == (1.5, 12345)
        assert body["value_score"] == 77
        assert body["cluster"] == {"id": str(cluster.id), "label": "big spenders"}
        assert body["computed_at"] is not None

    async def test_merged_answers_with_survivor(
        self, client: AsyncClient, session: AsyncSession
    ) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        body = (await client.get("/v1/customers/x/scores")).json()
        assert (body["customer_external_id"], body["survivor_external_id"]) == ("x", "a")
        assert body["rfm"]["score"] == "554" and body["orders"]["count"] == 3

    async def test_prospect_without_row(self, client: AsyncClient) -> None:
        body = (await client.get("/v1/customers/p/scores")).json()
        assert body["lifecycle"] == "prospect" and body["rfm"] is None
        assert body["orders"] == {
            "count": 0,
            "revenue_minor": 0,
            "first_order_at": None,
            "last_order_at": None,
        }
        assert body["computed_at"] is None

    async def test_no_rfm_outside_window(self, client: AsyncClient, session: AsyncSession) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=30, now=NOW)
        body = (await client.get("/v1/customers/e/scores")).json()
        assert body["rfm"] is None and body["orders"]["count"] == 2
        assert body["lifecycle"] == "dormant"  # last order 182 days ago (> 180)

    async def test_known_only_by_orders(self, client: AsyncClient, session: AsyncSession) -> None:
        await service.recompute(session, as_of=AS_OF, window_days=365, now=NOW)
        body = (await client.get("/v1/customers/z/scores")).json()
        assert body["rfm"]["group"] == "at_risk"

    async def test_unknown(self, client: AsyncClient) -> None:
        response = await client.get("/v1/customers/nobody/scores")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"

    async def test_needs_credentials(self, anonymous: AsyncClient) -> None:
        assert (await anonymous.get("/v1/customers/a/scores")).status_code == 401
