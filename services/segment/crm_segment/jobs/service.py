"""Queueing jobs (API) and running them (worker).

A job runs in its own transaction: its effects and its ``succeeded`` status commit together; a
failure rolls the effects back and records ``failed`` with the error. A worker killed while a
job runs leaves it ``running``; :func:`requeue_stale` puts such jobs back after a timeout.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import Database
from crm_segment.jobs import registry
from crm_segment.jobs.errors import JobNotFound
from crm_segment.jobs.repository import JobRepository
from crm_segment.models import Job

log = logging.getLogger(__name__)

#: Advisory lock over ``customer_score``: batch jobs take it exclusively, evaluation batches
#: shared (see ``crm_segment.evaluation.worker.scores_unlocked``).
SCORES_LOCK = 0x5E6_0003

#: A job still ``running`` this long after it started is assumed lost with its worker.
STALE_AFTER = timedelta(hours=2)


async def submit(session: AsyncSession, kind: str, params: dict[str, Any]) -> Job:
    """Queue a job of ``kind`` (one of ``registry.HANDLERS``)."""
    if kind not in registry.HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}")
    return await JobRepository(session).create(kind, params)


async def get(session: AsyncSession, job_id: uuid.UUID) -> Job:
    """The job, or 404."""
    job = await JobRepository(session).get(job_id)
    if job is None:
        raise JobNotFound(f"No job {job_id}")
    return job


async def run_job(session: AsyncSession, job: Job) -> dict[str, Any]:
    """Run ``job``'s handler inside ``session`` (the caller commits), holding the scores lock
    exclusively: evaluation batches wait until the job's rewrite of the scores commits."""
    await session.execute(select(func.pg_advisory_xact_lock(SCORES_LOCK)))
    return await registry.handler(job.kind)(session, dict(job.params))


async def run_next(database: Database) -> bool:
    """Claim and run the oldest queued job; False when there was none."""
    async with database.unit_of_work() as session:
        job = await JobRepository(session).claim(datetime.now(UTC))
        if job is None:
            return False
        job_id = job.id
    try:
        async with database.unit_of_work() as session:
            job = await JobRepository(session).get(job_id)
            assert job is not None
            result = await run_job(session, job)
            await JobRepository(session).finish(job_id, datetime.now(UTC), result=result)
    except Exception as exc:  # a failed job is recorded and the worker goes on
        log.exception("job %s failed", job_id)
        async with database.unit_of_work() as session:
            await JobRepository(session).finish(
                job_id, datetime.now(UTC), error=f"{type(exc).__name__}: {exc}"
            )
    return True


async def run_queued(database: Database) -> None:
    """Periodic worker job: run every queued job, oldest first."""
    await requeue_stale(database)
    while await run_next(database):
        pass


async def requeue_stale(database: Database) -> None:
    """Put back jobs whose worker died while running them."""
    async with database.unit_of_work() as session:
        await session.execute(
            update(Job)
            .where(Job.status == "running", Job.started_at < datetime.now(UTC) - STALE_AFTER)
            .values(status="queued", started_at=None)
        )
