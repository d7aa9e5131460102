"""SQL of the job table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from crm_common.repository import RepositoryBase
from crm_segment.models import Job


class JobRepository(RepositoryBase[Job]):
    """Jobs: create, claim the oldest queued one, finish."""

    model = Job

    async def create(self, kind: str, params: dict[str, Any]) -> Job:
        """A new queued job."""
        job = Job(id=uuid.uuid4(), kind=kind, params=params, status="queued")
        self.session.add(job)
        await self.session.flush()
        await self.session.refresh(job)
        return job

    async def get(self, job_id: uuid.UUID) -> Job | None:
        """The job, or None."""
        return await self.session.get(Job, job_id)

    async def claim(self, now: datetime) -> Job | None:
        """Mark the oldest queued job running and return it (skipping jobs other workers hold)."""
        stmt = (
            select(Job)
            .where(Job.status == "queued")
            .order_by(Job.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        job = (await self.session.execute(stmt)).scalar_one_or_none()
        if job is not None:
            job.status = "running"
            job.started_at = now
            await self.session.flush()
        return job

    async def finish(
        self,
        job_id: uuid.UUID,
        now: datetime,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome."""
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status="failed" if error else "succeeded",
                result=result,
                error=error,
                finished_at=now,
            )
        )

    async def last_finished(self, kind: str, *, failed_too: bool = False) -> Job | None:
        """The most recent successful job of ``kind`` (or finished one, with ``failed_too``)."""
        statuses = ("succeeded", "failed") if failed_too else ("succeeded",)
        stmt = (
            select(Job)
            .where(Job.kind == kind, Job.status.in_(statuses), Job.finished_at.is_not(None))
            .order_by(Job.finished_at.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def pending(self, kind: str) -> bool:
        """True when a job of ``kind`` is queued or running."""
        stmt = select(Job.id).where(Job.kind == kind, Job.status.in_(("queued", "running")))
        return (await self.session.execute(stmt.limit(1))).first() is not None
