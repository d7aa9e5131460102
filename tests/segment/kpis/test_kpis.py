"""``GET /v1/kpis``: every KPI of every period, computed by hand (see docs/segment/kpis.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.kpis import service
from crm_segment.models import CustomerScore, InteractionDaily
from tests.segment.rfm.factories import add_customer, add_order


def at(m: int, d: int, y: int = 2026, h: int = 10) -> datetime:
    """A UTC instant."""
    return datetime(y, m, d, h, tzinfo=UTC)


@pytest.fixture
async def orders(session: AsyncSession) -> None:
    """Five customers' orders around January-March 2026, complaints and predicted CLVs."""
    for cid in "ABCDE":
        await add_customer(session, cid)
    await add_order(session, "A", at(12, 15, 2025), 100)
    await add_order(session, "A", at(1, 10), 200)
    await add_order(session, "A", at(1, 20), 300, refunded_minor=100)
    await add_order(session, "B", at(1, 5), 1000)
    await add_order(session, "B", at(3, 3), 500)
    await add_order(session, "C", at(2, 14), 400)
    await add_order(session, "C", at(2, 20), 999, status="cancelled")
    await add_order(session, "D", at(3, 31, h=23), 600, refunded_minor=600, fully_refunded=True)
    await add_order(session, "E", at(3, 15), 50)
    for cid, day, kind, count in (
        ("A", date(2026, 1, 11), "complaint_filed", 2),
        ("C", date(2026, 2, 14), "complaint_filed", 1),
        ("A", date(2026, 1, 11), "product_view", 5),
    ):
        session.add(
            InteractionDaily(
                customer_external_id=cid,
                root_external_id=cid,
                day=day,
                type=kind,
                count=count,
                last_at=at(day.month, day.day),
            )
        )
    for cid, clv in (("A", 1000), ("B", 3000), ("C", None), ("E", 500)):
        session.add(CustomerScore(customer_external_id=cid, clv_12m_minor=clv))
    await session.flush()


@pytest.mark.usefixtures("orders")
class TestMonthly:
    async def test_every_kpi(self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(settings, "lifecycle_churned_days", 30)
        got = await service.report(session, date(2026, 1, 1), date(2026, 3, 31), "month", at(4, 30))
        periods = [p.model_dump(mode="json") for p in got.periods]
        assert periods == [
            {
                "start": "2026-01-01",
                "end": "2026-01-31",
                "new_customers": 1,  # B (A's first order was in December)
                "active_customers": 2,  # A, B
                "churned_customers": 0,
                "repeat_purchase_rate": 0.5,  # A had an earlier order; B only one so far
                "average_order_value_minor": pytest.approx(1400 / 3),
                "revenue_minor": 1400,  # 200 + (300 - 100) + 1000
                "orders": 3,
                "refund_rate": pytest.approx(100 / 1500),
                "complaints": 2,
                "complaint_rate": 1.0,  # 2 complaints / 2 active customers
                "average_clv_minor": 2000.0,  # (1000 + 3000) / 2
            },
            {
                "start": "2026-02-01",
                "end": "2026-02-28",
                "new_customers": 1,  # C
                "active_customers": 1,
                # A (last order 01-20) and B (01-05, next only 03-03) pass 30 days in February
                "churned_customers": 2,
                "repeat_purchase_rate": 0.0,
                "average_order_value_minor": 400.0,  # the cancelled order does not count
                "revenue_minor": 400,
                "orders": 1,
                "refund_rate": 0.0,
                "complaints": 1,
                "complaint_rate": 1.0,
                "average_clv_minor": None,  # C has no prediction
            },
            {
                "start": "2026-03-01",
                "end": "2026-03-31",
                "new_customers": 1,  # E; D's only order was fully refunded
                "active_customers": 2,  # B, E
                "churned_customers": 1,  # C: 02-14 + 30 days = 03-16
                "repeat_purchase_rate": 0.5,  # B
                "average_order_value_minor": 275.0,
                "revenue_minor": 550,
                "orders": 2,
                "refund_rate": pytest.approx(600 / 1150),  # D's refund counts against gross
                "complaints": 0,
                "complaint_rate": 0.0,
                "average_clv_minor": 1750.0,
            },
        ]

    async def test_churn_not_yet_happened(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "lifecycle_churned_days", 30)
        got = await service.report(session, date(2026, 3, 1), date(2026, 3, 31), "month", at(3, 10))
        assert [p.churned_customers for p in got.periods] == [0]  # C churns on 03-16

    async def test_default_churn_window(self, session: AsyncSession) -> None:
        got = await service.report(session, date(2026, 1, 1), date(2026, 3, 31), "month", at(4, 30))
        assert [p.churned_customers for p in got.periods] == [0, 0, 0]


@pytest.mark.usefixtures("orders")
class TestEndpoint:
    async def test_weeks_are_clipped_to_the_range(self, client: AsyncClient) -> None:
        response = await client.get(
            "/v1/kpis", params={"from": "2026-01-07", "to": "2026-01-20", "granularity": "week"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["from"], body["to"], body["granularity"]) == (
            "2026-01-07",
            "2026-01-20",
            "week",
        )
        assert [(p["start"], p["end"], p["revenue_minor"]) for p in body["periods"]] == [
            ("2026-01-07", "2026-01-11", 200),  # B's order of 01-05 is before the range
            ("2026-01-12", "2026-01-18", 0),
            ("2026-01-19", "2026-01-20", 200),
        ]
        empty = body["periods"][1]
        assert empty["active_customers"] == 0 and empty["repeat_purchase_rate"] is None
        assert empty["average_order_value_minor"] is None and empty["refund_rate"] is None

    async def test_days(self, client: AsyncClient) -> None:
        body = (
            await client.get(
                "/v1/kpis", params={"from": "2026-03-31", "to": "2026-03-31", "granularity": "day"}
            )
        ).json()
        (day,) = body["periods"]
        # D's fully refunded order at 23:00 UTC: no revenue, all refunded
        assert (day["revenue_minor"], day["orders"], day["refund_rate"]) == (0, 0, 1.0)

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"from": "2026-02-01", "to": "2026-01-01"}, "query.to"),
            ({"from": "2020-01-01", "to": "2026-01-01", "granularity": "day"}, "query.from"),
            (
                {"from": "2026-01-01", "to": "2026-02-01", "granularity": "year"},
                "query.granularity",
            ),
            ({"to": "2026-02-01"}, "query.from"),
            ({"from": "2026-01-01", "to": "soon"}, "query.to"),
        ],
    )
    async def test_invalid(self, client: AsyncClient, params: dict[str, str], field: str) -> None:
        response = await client.get("/v1/kpis", params=params)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]

    async def test_long_ranges_in_coarser_periods(self, client: AsyncClient) -> None:
        params = {"from": "2020-01-01", "to": "2026-01-01", "granularity": "month"}
        response = await client.get("/v1/kpis", params=params)
        assert response.status_code == 200 and len(response.json()["periods"]) == 73

    async def test_needs_credentials(self, anonymous: AsyncClient) -> None:
        params = {"from": "2026-01-01", "to": "2026-01-02"}
        assert (await anonymous.get("/v1/kpis", params=params)).status_code == 401


class TestPeriodCount:
    @pytest.mark.parametrize(
        ("start", "end", "granularity", "count"),
        [
            (date(2026, 1, 1), date(2026, 1, 1), "day", 1),
            (date(2026, 1, 1), date(2026, 12, 31), "day", 365),
            (date(2026, 1, 4), date(2026, 1, 5), "week", 2),  # Sunday, Monday
            (date(2026, 1, 5), date(2026, 1, 11), "week", 1),
            (date(2025, 12, 31), date(2026, 1, 1), "month", 2),
        ],
    )
    def test_count(self, start: date, end: date, granularity: str, count: int) -> None:
        assert service.period_count(start, end, granularity) == count  # type: ignore[arg-type]
