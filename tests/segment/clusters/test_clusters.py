"""K-means clusters: k by silhouette, labels, assignments, the job and the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment import builtins
from crm_segment.clusters import repository
from crm_segment.clusters.errors import ClusteringFailed
from crm_segment.clusters.jobs import run_clusters
from crm_segment.clusters.labels import make_labels
from crm_segment.jobs import registry
from crm_segment.models import Cluster, CustomerScore, Order, OrderLine, Segment
from tests.segment.clv.factories import (
    add_customer,
    add_interactions,
    add_orders,
    interaction_row,
    order_row,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PARAMS = {"now": NOW.isoformat()}

#: name -> (orders, value of each, days since the last, categories, interactions, tenure days)
GROUPS: dict[str, tuple[int, int, int, int, int, int]] = {
    "whale": (12, 60_000, 2, 6, 300, 700),
    "casual": (3, 5_000, 45, 2, 20, 200),
    "lapsed": (1, 1_500, 300, 1, 0, 320),
}


async def add_group(session: AsyncSession, name: str, n: int = 15) -> list[str]:
    """``n`` customers of a group, each slightly different (so no two rows are equal)."""
    orders, value, recency, categories, interactions, tenure = GROUPS[name]
    ids, order_rows, lines, behaviour = [], [], [], []
    for i in range(n):
        cid = f"{name}-{i}"
        ids.append(cid)
        last = NOW - (recency + i % 4) * DAY
        first = NOW - (tenure + i) * DAY
        for j in range(orders):
            placed = last - j * ((last - first) / max(orders - 1, 1)) if orders > 1 else last
            row = order_row(cid, placed, value + 37 * i + j, order_id=f"{cid}-o{j}")
            order_rows.append(row)
            for c in range(categories):
                lines.append(
                    {
                        "order_external_id": row["order_external_id"],
                        "line_no": c + 1,
                        "sku": f"{name}-sku-{c}",
                        "category": f"{name}-cat-{c}",
                        "quantity": 1,
                        "unit_price_minor": value,
                    }
                )
        if interactions:
            behaviour.append(
                interaction_row(cid, NOW.date() - DAY, "product_view", interactions + i)
            )
    await add_orders(session, order_rows)
    await session.execute(insert(OrderLine), lines)
    await add_interactions(session, behaviour)
    return ids


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[list[Cluster]]:
    """Every ``sync_cluster_segments`` call's clusters."""
    calls: list[list[Cluster]] = []

    async def record(session: AsyncSession, clusters: Any) -> None:
        calls.append(list(clusters))

    monkeypatch.setattr(builtins, "sync_cluster_segments", record)
    return calls


async def assignments(session: AsyncSession) -> dict[str, Any]:
    rows = await session.execute(
        select(CustomerScore.customer_external_id, CustomerScore.cluster_id)
        .where(CustomerScore.cluster_id.is_not(None))
        .execution_options(populate_existing=True)
    )
    return dict(rows.tuples().all())


class TestFeatures:
    async def test_one_customer(self, session: AsyncSession) -> None:
        await add_customer(session, "c", registered_at=NOW - 400 * DAY)
        await add_customer(session, "dup", status="merged", root="c")
        await add_orders(
            session,
            [
                order_row("c", NOW - 100 * DAY, 4000, order_id="a"),
                order_row("dup", NOW - 10 * DAY, 2000, root="c", order_id="b", refunded_minor=500),
                order_row("c", NOW - 5 * DAY, 9999, status="cancelled", order_id="x"),
            ],
        )
        await session.execute(
            insert(OrderLine),
            [
                {
                    "order_external_id": oid,
                    "line_no": n,
                    "sku": f"s{n}",
                    "category": cat,
                    "quantity": 1,
                    "unit_price_minor": 1,
                }
                for oid, n, cat in [
                    ("a", 1, "shoes"),
                    ("a", 2, "bags"),
                    ("b", 1, "shoes"),
                    ("b", 2, ""),
                    ("x", 1, "hats"),
                ]
            ],
        )
        await add_interactions(
            session,
            [
                interaction_row("dup", NOW.date(), "app_open", 3, root="c"),
                interaction_row("c", NOW.date() - 89 * DAY, "product_view", 4),
                interaction_row("c", NOW.date() - 90 * DAY, "product_view", 100),
            ],
        )
        rows = await repository.features(session, NOW)
        assert rows == [
            repository.FeatureRow("c", 10, 2, 5500, 2750.0, 2, 400, 7),
        ]


class TestRun:
    async def test_registered(self) -> None:
        assert registry.handler("clusters") is run_clusters

    async def test_separated_groups_are_found(
        self, session: AsyncSession, synced: list[list[Cluster]]
    ) -> None:
        members = {name: await add_group(session, name) for name in GROUPS}
        result = await run_clusters(session, PARAMS)
        assert result["k"] == 3
        assert result["customers"] == 45
        assert result["silhouette"] == max(result["silhouette_by_k"].values())
        assert set(result["silhouette_by_k"]) == {str(k) for k in range(2, 9)}

        clusters = await repository.latest_run(session)
        assert [c.size for c in clusters] == [15, 15, 15]
        assert [c.index for c in clusters] == [0, 1, 2]
        assert len({c.label for c in clusters}) == 3
        assigned = await assignments(session)
        assert len(assigned) == 45
        by_id = {c.id: c for c in clusters}
        for name, ids in members.items():
            found = {assigned[i] for i in ids}
            assert len(found) == 1, name  # a group is exactly one cluster
            members[name] = [by_id[found.pop()].label]
        assert "high spend" in members["whale"][0] and "frequent" in members["whale"][0]
        assert "lapsed" in members["lapsed"][0] or "low spend" in members["lapsed"][0]

        whale = next(c for c in clusters if c.label == members["whale"][0])
        d = whale.description
        assert d["features"]["frequency"]["median"] == 12
        assert d["features"]["category_breadth"]["mean"] == 6
        assert set(d["centroid"]) == set(d["features"]) == set(repository.FEATURES)
        assert d["run"]["k"] == 3 and d["run"]["customers"] == 45
        assert d["difference"]["monetary_minor"] > 0.5
        assert synced == [clusters]

    async def test_explicit_k_is_honoured(
        self, session: AsyncSession, synced: list[list[Cluster]]
    ) -> None:
        for name in GROUPS:
            await add_group(session, name)
        result = await run_clusters(session, {**PARAMS, "k": 5})
        assert result["k"] == 5
        assert list(result["silhouette_by_k"]) == ["5"]
        clusters = await repository.latest_run(session)
        assert len(clusters) == 5
        assert len({c.label for c in clusters}) == 5
        assert sum(c.size for c in clusters) == 45

    async def test_a_rerun_replaces_the_assignments(
        self, session: AsyncSession, synced: list[list[Cluster]]
    ) -> None:
        for name in GROUPS:
            await add_group(session, name)
        await run_clusters(session, PARAMS)
        first = await repository.latest_run(session)
        await session.execute(
            update(Order).where(Order.customer_external_id == "lapsed-0").values(status="cancelled")
        )
        await run_clusters(session, {**PARAMS, "k": 2})
        second = await repository.latest_run(session)
        assert len(second) == 2
        assert {c.run_id for c in second} != {c.run_id for c in first}
        assigned = await assignments(session)
        assert "lapsed-0" not in assigned
        assert set(assigned.values()) <= {c.id for c in second}
        assert len(assigned) == 44

    async def test_built_in_segments_follow_the_latest_run(self, session: AsyncSession) -> None:
        for name in GROUPS:
            await add_group(session, name)
        await run_clusters(session, {**PARAMS, "k": 3})
        await run_clusters(session, {**PARAMS, "k": 2})
        latest = {str(c.id) for c in await repository.latest_run(session)}
        live = (
            (
                await session.execute(
                    select(Segment).where(Segment.kind == "cluster", Segment.deleted_at.is_(None))
                )
            )
            .scalars()
            .all()
        )
        assert {s.rule["value"] for s in live} == latest

    async def test_too_few_customers(
        self, session: AsyncSession, synced: list[list[Cluster]]
    ) -> None:
        await add_group(session, "whale", n=10)
        with pytest.raises(ClusteringFailed, match="10 with a purchase; at least 20"):
            await run_clusters(session, PARAMS)
        assert await repository.latest_run(session) == []
        assert synced == []

    async def test_too_few_distinct_customers(
        self, session: AsyncSession, synced: list[list[Cluster]]
    ) -> None:
        await add_orders(session, [order_row(f"same-{i}", NOW - DAY, 1000) for i in range(25)])
        with pytest.raises(ClusteringFailed, match="distinct"):
            await run_clusters(session, PARAMS)

    @pytest.mark.parametrize("k", [1, 9, "3", True, 2.5])
    async def test_bad_k(self, session: AsyncSession, k: Any) -> None:
        with pytest.raises(ValueError, match="params.k"):
            await run_clusters(session, {"k": k})


class TestLabels:
    def test_typical_and_words(self) -> None:
        zero = dict.fromkeys(repository.FEATURES, 0.0)
        high = {
            **zero,
            "monetary_minor": 0.6,
            "frequency": 0.9,
            "recency_days": -0.7,
            "engagement": 2,
        }
        assert make_labels([zero, high]) == ["typical", "high spend · frequent · recent"]
        low = {**zero, "tenure_days": -0.8, "engagement": -0.5}
        assert make_labels([low]) == ["new · disengaged"]

    def test_collisions_get_more_words_then_numbers(self) -> None:
        zero = dict.fromkeys(repository.FEATURES, 0.0)
        a = {**zero, "monetary_minor": 1.0, "engagement": 0.1}
        b = {**zero, "monetary_minor": 1.0, "engagement": -0.1}
        assert make_labels([a, b]) == ["high spend · engaged", "high spend · disengaged"]
        # no word tells them apart: numbered
        assert make_labels([zero, zero, a]) == ["typical", "typical (2)", "high spend"]


class TestEndpoints:
    async def test_no_run_yet(self, client: AsyncClient) -> None:
        body = (await client.get("/v1/clusters")).json()
        assert body == {
            "run_id": None,
            "k": None,
            "silhouette": None,
            "customers": None,
            "created_at": None,
            "clusters": [],
        }

    async def test_latest_run(
        self, client: AsyncClient, session: AsyncSession, synced: list[list[Cluster]]
    ) -> None:
        for name in GROUPS:
            await add_group(session, name)
        result = await run_clusters(session, PARAMS)
        body = (await client.get("/v1/clusters")).json()
        assert body["run_id"] == result["run_id"]
        assert (body["k"], body["customers"]) == (3, 45)
        assert body["silhouette"] == pytest.approx(result["silhouette"])
        assert [c["label"] for c in body["clusters"]] == [c["label"] for c in result["clusters"]]
        assert set(body["clusters"][0]) == {"id", "index", "label", "size", "description"}

    @pytest.mark.parametrize("payload", [{}, {"k": 4}, {"k": None}])
    async def test_queue_a_run(self, client: AsyncClient, payload: dict[str, Any]) -> None:
        response = await client.post("/v1/clusters/run", json=payload)
        assert response.status_code == 202
        body = response.json()
        assert (body["kind"], body["status"]) == ("clusters", "queued")
        assert body["params"] == ({"k": 4} if payload.get("k") else {})

    async def test_queue_without_a_body(self, client: AsyncClient) -> None:
        response = await client.post("/v1/clusters/run")
        assert response.status_code == 202
        assert response.json()["params"] == {}

    @pytest.mark.parametrize("payload", [{"k": 1}, {"k": 9}, {"k": "3"}, {"k": 2.5}, {"n": 3}])
    async def test_bad_k_is_422(self, client: AsyncClient, payload: dict[str, Any]) -> None:
        response = await client.post("/v1/clusters/run", json=payload)
        assert response.status_code == 422
        assert str(next(iter(payload))) in response.text

    async def test_scopes(self, anonymous: AsyncClient) -> None:
        assert (await anonymous.get("/v1/clusters")).status_code == 401
        assert (await anonymous.post("/v1/clusters/run", json={})).status_code == 401
