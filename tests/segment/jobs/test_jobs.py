"""Batch jobs: queued through the API, claimed and run by the worker, failures recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import Database
from crm_segment import scheduling
from crm_segment.jobs import registry, service
from crm_segment.models import Job


@pytest.fixture
async def committed_jobs(database: Database) -> AsyncIterator[list[uuid.UUID]]:
    """Ids of jobs a test commits; deleted afterwards (with any other queued job left over)."""
    ids: list[uuid.UUID] = []
    yield ids
    async with database.unit_of_work() as session:
        await session.execute(delete(Job).where(Job.id.in_(ids)))


@pytest.fixture
def test_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Handlers of this test module under the kinds ``t-ok`` and ``t-fail``."""
    monkeypatch.setitem(registry.HANDLERS, "t-ok", "tests.segment.jobs.handlers:succeed")
    monkeypatch.setitem(registry.HANDLERS, "t-fail", "tests.segment.jobs.handlers:fail")


async def _job(database: Database, job_id: uuid.UUID) -> Job:
    async with database.unit_of_work() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def _only_queued(database: Database, ids: list[uuid.UUID]) -> None:
    """Park every other queued job so ``run_next`` takes the test's."""
    async with database.unit_of_work() as session:
        await session.execute(
            update(Job).where(Job.status == "queued", Job.id.not_in(ids)).values(status="failed")
        )


@pytest.mark.usefixtures("test_handlers")
async def test_a_queued_job_runs_once_and_keeps_its_result(
    database: Database, committed_jobs: list[uuid.UUID]
) -> None:
    async with database.unit_of_work() as session:
        job = await service.submit(session, "t-ok", {"k": 1})
    committed_jobs.append(job.id)
    await _only_queued(database, committed_jobs)

    assert await service.run_next(database) is True
    assert await service.run_next(database) is False

    done = await _job(database, job.id)
    assert done.status == "succeeded"
    assert done.result == {"echo": {"k": 1}, "one": 1}
    assert done.started_at is not None and done.finished_at is not None
    assert done.error is None


@pytest.mark.usefixtures("test_handlers")
async def test_a_failing_job_is_recorded_and_its_writes_rolled_back(
    database: Database, committed_jobs: list[uuid.UUID]
) -> None:
    async with database.unit_of_work() as session:
        job = await service.submit(session, "t-fail", {})
        job.params = {"id": str(job.id)}
    committed_jobs.append(job.id)
    await _only_queued(database, committed_jobs)

    await service.run_queued(database)

    failed = await _job(database, job.id)
    assert failed.status == "failed"
    assert failed.error == "RuntimeError: the batch broke"
    assert failed.params == {"id": str(job.id)}  # the handler's update was rolled back


async def test_a_job_left_running_by_a_dead_worker_is_queued_again(
    database: Database, committed_jobs: list[uuid.UUID]
) -> None:
    async with database.unit_of_work() as session:
        stale = Job(
            id=uuid.uuid4(),
            kind="rfm",
            status="running",
            started_at=datetime.now(UTC) - service.STALE_AFTER - timedelta(minutes=1),
        )
        fresh = Job(id=uuid.uuid4(), kind="rfm", status="running", started_at=datetime.now(UTC))
        session.add_all([stale, fresh])
    committed_jobs.extend([stale.id, fresh.id])

    await service.requeue_stale(database)

    assert (await _job(database, stale.id)).status == "queued"
    assert (await _job(database, fresh.id)).status == "running"


async def test_unknown_kind_is_refused(session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="unknown job kind"):
        await service.submit(session, "nope", {})


async def _last_run(database: Database, kind: str, status: str, finished_ago: timedelta) -> Job:
    """Park every pending job of ``kind`` and commit a last run of it, finished that long ago."""
    async with database.unit_of_work() as session:
        await session.execute(
            update(Job)
            .where(Job.kind == kind, Job.status.in_(("queued", "running")))
            .values(status="failed")
        )
        last = Job(
            id=uuid.uuid4(), kind=kind, status=status, finished_at=datetime.now(UTC) - finished_ago
        )
        session.add(last)
    return last


async def _job_ids(database: Database) -> set[uuid.UUID]:
    async with database.unit_of_work() as session:
        return set((await session.execute(select(Job.id))).scalars())


async def _jobs_since(database: Database, before: set[uuid.UUID]) -> list[Job]:
    async with database.unit_of_work() as session:
        return [j for j in (await session.execute(select(Job))).scalars() if j.id not in before]


async def test_schedule_queues_each_kind_once_until_it_is_due_again(
    database: Database, committed_jobs: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        scheduling, "intervals", lambda: {"rfm": timedelta(hours=24), "clv_fit": timedelta(0)}
    )
    # the last rfm run finished long ago, and nothing of it is pending
    committed_jobs.append((await _last_run(database, "rfm", "succeeded", timedelta(days=2))).id)
    before = await _job_ids(database)

    await scheduling.schedule_due_jobs(database)
    await scheduling.schedule_due_jobs(database)  # already pending: not queued twice

    new = await _jobs_since(database, before)
    committed_jobs.extend(j.id for j in new)
    assert [(j.kind, j.status, j.params) for j in new] == [("rfm", "queued", {"full": False})]


@pytest.mark.parametrize("status", ["succeeded", "failed"])
async def test_schedule_leaves_a_recent_run_alone(
    database: Database,
    committed_jobs: list[uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
    status: str,
) -> None:
    # a failed run (e.g. too little data for a fit) waits its interval too
    monkeypatch.setattr(scheduling, "intervals", lambda: {"clv_fit": timedelta(hours=24)})
    last = await _last_run(database, "clv_fit", status, -timedelta(hours=1))
    committed_jobs.append(last.id)
    before = await _job_ids(database)

    await scheduling.schedule_due_jobs(database)

    assert await _jobs_since(database, before) == []


async def test_get_job_endpoint(client: AsyncClient, session: AsyncSession) -> None:
    job = await service.submit(session, "rfm", {"window_days": 90})

    found = await client.get(f"/v1/jobs/{job.id}")
    missing = await client.get(f"/v1/jobs/{uuid.uuid4()}")

    assert found.status_code == 200
    assert found.json()["kind"] == "rfm"
    assert found.json()["status"] == "queued"
    assert found.json()["params"] == {"window_days": 90}
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"].endswith("job-not-found")


async def test_get_job_needs_the_read_scope(anonymous: AsyncClient) -> None:
    assert (await anonymous.get(f"/v1/jobs/{uuid.uuid4()}")).status_code == 401


async def test_two_workers_checking_at_once_queue_one_batch(
    database: Database, committed_jobs: list[uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduling, "intervals", lambda: {"rfm": timedelta(hours=24)})
    committed_jobs.append((await _last_run(database, "rfm", "succeeded", timedelta(days=3))).id)
    before = await _job_ids(database)

    await asyncio.gather(*(scheduling.schedule_due_jobs(database) for _ in range(4)))

    new = await _jobs_since(database, before)
    committed_jobs.extend(j.id for j in new)
    assert [(j.kind, j.status) for j in new] == [("rfm", "queued")]


async def test_evaluation_batches_wait_while_a_job_rewrites_the_scores(
    database: Database,
) -> None:
    from crm_segment.evaluation.worker import process_batch
    from crm_segment.models import CustomerScore, EvaluationQueue

    async with database.unit_of_work() as session:
        session.add(
            EvaluationQueue(
                customer_external_id=f"lock-{uuid.uuid4().hex[:8]}",
                due_at=datetime.now(UTC) - timedelta(seconds=1),
            )
        )
    try:
        async with database.engine.connect() as job_conn:
            async with job_conn.begin():
                await job_conn.execute(select(func.pg_advisory_xact_lock(service.SCORES_LOCK)))
                assert await process_batch(database, 500) == 0  # the job holds the lock
            assert await process_batch(database, 500) >= 1  # committed: batches go on
    finally:
        async with database.unit_of_work() as session:
            for table in (EvaluationQueue, CustomerScore):
                await session.execute(
                    delete(table).where(table.customer_external_id.like("lock-%"))
                )
