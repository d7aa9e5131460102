"""The worker's schedule: queue the daily batch jobs when their last run is old enough.

Runs every minute; a job kind is queued when none is queued or running and the last
successful one finished longer ago than its interval (so a restarted worker neither skips a
day nor runs the batch twice; a failed run is not retried before its interval either). Several worker replicas check under one transaction-scoped
advisory lock, so two of them cannot both queue the same batch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from crm_common.db import Database
from crm_segment.config import settings
from crm_segment.jobs import service
from crm_segment.jobs.repository import JobRepository

#: Advisory lock key of the schedule check (the full refresh uses 0x5E60001).
SCHEDULE_LOCK = 0x5E6_0002


#: Parameters of the scheduled runs: the daily RFM run is incremental (docs/segment/rfm.md,
#: "Full and incremental runs"): it starts from the rows the re-evaluation queue keeps current.
SCHEDULED_PARAMS: dict[str, dict[str, object]] = {"rfm": {"full": False}}


def intervals() -> dict[str, timedelta]:
    """Job kind -> how often it runs (0 turns the schedule of that kind off)."""
    return {
        "rfm": timedelta(hours=settings.rfm_every_hours),
        "clv_fit": timedelta(hours=settings.clv_fit_every_hours),
    }


async def schedule_due_jobs(database: Database) -> None:
    """Queue each scheduled kind whose last run is older than its interval."""
    now = datetime.now(UTC)
    async with database.unit_of_work() as session:
        await session.execute(select(func.pg_advisory_xact_lock(SCHEDULE_LOCK)))
        repo = JobRepository(session)
        for kind, every in intervals().items():
            if not every or await repo.pending(kind):
                continue
            # a failed run (e.g. too little data for a fit) waits its interval too
            last = await repo.last_finished(kind, failed_too=True)
            if last is None or last.finished_at is None or now - last.finished_at >= every:
                await service.submit(session, kind, SCHEDULED_PARAMS.get(kind, {}))
