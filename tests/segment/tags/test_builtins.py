"""Built-in segments and default tag rules; cluster segments follow the latest k-means run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.builtins import (
    DEFAULT_TAG_RULES,
    ensure_builtin_segments,
    sync_cluster_segments,
)
from crm_segment.evaluation.service import evaluate_customers, evaluate_segment_full
from crm_segment.models import Cluster, CustomerScore, Segment
from crm_segment.rules.compiler import compile_rule
from crm_segment.rules.fields import LIFECYCLE_STAGES, RFM_GROUPS
from tests.segment.evaluation.factories import changes, customer, members, token

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def _live(session: AsyncSession, kind: str) -> list[Segment]:
    stmt = (
        select(Segment)
        .where(Segment.kind == kind, Segment.deleted_at.is_(None))
        .order_by(Segment.key)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars().all())


class TestEnsureBuiltins:
    async def test_creates_every_builtin_once(self, session: AsyncSession):
        created = await ensure_builtin_segments(session)
        assert len(created) == len(RFM_GROUPS) + len(LIFECYCLE_STAGES) + len(DEFAULT_TAG_RULES)
        assert await ensure_builtin_segments(session) == []
        assert sorted(str(s.key) for s in await _live(session, "rfm")) == sorted(RFM_GROUPS)
        assert sorted(str(s.key) for s in await _live(session, "lifecycle")) == sorted(
            LIFECYCLE_STAGES
        )
        tags = await _live(session, "tag")
        assert sorted(str(s.tag) for s in tags) == sorted(DEFAULT_TAG_RULES)
        for segment in await _live(session, "rfm") + await _live(session, "lifecycle") + tags:
            compile_rule(segment.rule, now=NOW)  # every built-in rule is valid
            assert (segment.version, segment.evaluated_version) == (1, 0)

    async def test_a_deleted_default_tag_rule_stays_deleted(self, session: AsyncSession):
        await ensure_builtin_segments(session)
        await session.execute(
            update(Segment)
            .where(Segment.kind == "tag", Segment.key == "complainer")
            .values(deleted_at=NOW)
        )
        assert await ensure_builtin_segments(session) == []
        assert "complainer" not in [s.tag for s in await _live(session, "tag")]


class TestClusterSegments:
    async def _run(self, session: AsyncSession, labels: list[str]) -> list[Cluster]:
        run = uuid.uuid4()
        clusters = [
            Cluster(id=uuid.uuid4(), run_id=run, index=i, label=label, size=1, description={})
            for i, label in enumerate(labels)
        ]
        session.add_all(clusters)
        await session.flush()
        return clusters

    async def test_cluster_segments_are_replaced_by_the_next_run(self, session: AsyncSession):
        c = f"c-{token()}"
        await customer(session, c)
        first = await self._run(session, ["Big spenders", "Bargain hunters"])
        session.add(CustomerScore(customer_external_id=c, cluster_id=first[1].id))
        await session.flush()
        await sync_cluster_segments(session, first)
        old = await _live(session, "cluster")
        assert [(s.key, s.name) for s in old] == [
            ("0", "Cluster 0: Big spenders"),
            ("1", "Cluster 1: Bargain hunters"),
        ]
        for segment in old:
            await evaluate_segment_full(session, segment, NOW)
        assert await members(session, old[1].id) == [c]

        await sync_cluster_segments(session, first)  # the same run again: nothing changes
        assert [s.id for s in await _live(session, "cluster")] == [s.id for s in old]

        second = await self._run(session, ["Newcomers"])
        await session.execute(
            update(CustomerScore)
            .where(CustomerScore.customer_external_id == c)
            .values(cluster_id=second[0].id)
        )
        await sync_cluster_segments(session, second)
        new = await _live(session, "cluster")
        assert [(s.key, s.rule["value"]) for s in new] == [("0", str(second[0].id))]
        assert await changes(session, old[1].id) == [(c, "entered"), (c, "exited")]
        await evaluate_segment_full(session, new[0], NOW)
        assert await members(session, new[0].id) == [c]
        await evaluate_customers(session, [c], NOW)  # old segments are no longer evaluated
        assert await members(session, old[1].id) == []
