"""The worker loops on committed data: materialising, queue batches, the full refresh."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, select, update

from crm_common.db import Database
from crm_segment.config import settings
from crm_segment.evaluation import queue, worker
from crm_segment.models import (
    Customer,
    EvaluationQueue,
    Job,
    Segment,
    SegmentMember,
)
from tests.segment.evaluation.conftest import Committed
from tests.segment.evaluation.factories import customer, membership_events, segment, token

GERMANS = {"field": "country", "op": "eq", "value": "DE"}


async def _segment(database: Database, segment_id: uuid.UUID) -> Segment:
    async with database.unit_of_work() as session:
        found = await session.get(Segment, segment_id)
        assert found is not None
        return found


async def _queued(database: Database, external_id: str) -> bool:
    async with database.unit_of_work() as session:
        stmt = select(EvaluationQueue.customer_external_id).where(
            EvaluationQueue.customer_external_id == external_id
        )
        return (await session.execute(stmt)).first() is not None


class TestProcessQueue:
    async def test_materialises_new_segments_then_evaluates_due_customers_once(
        self, database: Database, committed: Committed
    ):
        a = f"a-{token()}"
        committed.customers.append(a)
        async with database.unit_of_work() as session:
            await customer(session, a, country="DE")
            seg = await segment(session, GERMANS, materialised=False)
            committed.segments.append(seg.id)
            await queue.enqueue(session, [a])
            await queue.enqueue(session, [a])  # a redelivered input event enqueues again

        await worker.process_queue(database)
        stored = await _segment(database, seg.id)
        assert (stored.evaluated_version, stored.members_count) == (1, 1)
        assert await membership_events(database, seg.id) == [(a, "entered")]
        assert not await _queued(database, a)

        async with database.unit_of_work() as session:
            await queue.enqueue(session, [a])
        await worker.process_queue(database)
        assert await membership_events(database, seg.id) == [(a, "entered")]

        async with database.unit_of_work() as session:
            await session.execute(
                update(Customer).where(Customer.customer_external_id == a).values(country="FR")
            )
            await queue.enqueue(session, [a])
        async with database.unit_of_work() as session:
            await queue.enqueue(session, [a])
        await worker.process_queue(database)
        await worker.process_queue(database)
        assert await membership_events(database, seg.id) == [(a, "entered"), (a, "exited")]
        assert (await _segment(database, seg.id)).members_count == 0

    async def test_a_changed_rule_is_rematerialised(self, database: Database, committed: Committed):
        a = f"a-{token()}"
        committed.customers.append(a)
        async with database.unit_of_work() as session:
            await customer(session, a, country="FR")
            seg = await segment(session, GERMANS, materialised=False)
            committed.segments.append(seg.id)
        await worker.process_queue(database)
        assert await membership_events(database, seg.id) == []
        async with database.unit_of_work() as session:
            await session.execute(
                update(Segment)
                .where(Segment.id == seg.id)
                .values(rule={"field": "country", "op": "eq", "value": "FR"}, version=2)
            )
        await worker.process_queue(database)
        stored = await _segment(database, seg.id)
        assert (stored.evaluated_version, stored.members_count) == (2, 1)
        assert await membership_events(database, seg.id) == [(a, "entered")]

    async def test_batches_take_only_due_customers(
        self, database: Database, committed: Committed, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setattr(settings, "evaluation_batch_size", 2)
        ids = [f"n{i}-{token()}" for i in range(5)]
        later = f"later-{token()}"
        committed.customers.extend([*ids, later])
        async with database.unit_of_work() as session:
            for i in [*ids, later]:
                await customer(session, i)
            seg = await segment(session, GERMANS)
            committed.segments.append(seg.id)
            await queue.enqueue(session, ids)
            await queue.enqueue(session, [later], datetime.now(UTC) + timedelta(hours=1))
        await worker.process_queue(database)
        assert sorted(c for c, _ in await membership_events(database, seg.id)) == sorted(ids)
        assert await _queued(database, later)


class TestFullRefresh:
    async def test_refresh_corrects_and_reports_drift_once_per_interval(
        self, database: Database, committed: Committed, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setattr(settings, "full_refresh_every_hours", 1.0)
        a, b = f"a-{token()}", f"b-{token()}"
        committed.customers.extend([a, b])
        async with database.unit_of_work() as session:
            await customer(session, a)
            await customer(session, b)
            seg = await segment(session, GERMANS, materialised=False)
            committed.segments.append(seg.id)
        await worker.process_queue(database)
        assert sorted(await membership_events(database, seg.id)) == [(a, "entered"), (b, "entered")]
        async with database.unit_of_work() as session:  # drift: a member row lost
            await session.execute(
                delete(SegmentMember).where(
                    SegmentMember.segment_id == seg.id, SegmentMember.customer_external_id == a
                )
            )
            # any earlier refresh is too old now
            await session.execute(
                update(Job)
                .where(Job.kind == worker.REFRESH_KIND)
                .values(finished_at=Job.finished_at - timedelta(days=1))
            )
        drift_before = (
            REGISTRY.get_sample_value("segment_membership_drift_total", {"kind": "rule"}) or 0.0
        )

        await worker.refresh_all_if_due(database)
        events = await membership_events(database, seg.id)
        assert sorted(events[:2]) == [(a, "entered"), (b, "entered")]
        assert events[2:] == [(a, "entered")]
        assert (await _segment(database, seg.id)).members_count == 2
        assert (
            REGISTRY.get_sample_value("segment_membership_drift_total", {"kind": "rule"})
            == drift_before + 1
        )
        async with database.unit_of_work() as session:
            jobs = (
                (
                    await session.execute(
                        select(Job).where(
                            Job.kind == worker.REFRESH_KIND, Job.id.not_in(committed.jobs_before)
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert len(jobs) == 1 and jobs[0].status == "succeeded"
        result = jobs[0].result
        assert result is not None
        mine = [d for d in result["drift"] if d["segment_id"] == str(seg.id)]
        assert mine == [
            {"segment_id": str(seg.id), "name": seg.name, "kind": "rule", "entered": 1, "exited": 0}
        ]

        await worker.refresh_all_if_due(database)  # not due again for an hour
        async with database.unit_of_work() as session:
            count = len(
                (
                    await session.execute(
                        select(Job.id).where(
                            Job.kind == worker.REFRESH_KIND, Job.id.not_in(committed.jobs_before)
                        )
                    )
                ).all()
            )
        assert count == 1
        assert len(await membership_events(database, seg.id)) == 3
