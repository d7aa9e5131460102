"""The evaluator's worker loops: due customers from the queue, and the periodic full refresh.

:func:`process_queue` (every ``evaluation_interval_seconds``) first creates the built-in
segments (once per process), then materialises segments whose rule changed (one transaction
each), then takes due customers in batches, one transaction per batch: the queue rows are
claimed with ``FOR UPDATE SKIP LOCKED`` (so several workers share the queue), deleted, and
the customers evaluated; the batch's membership changes, their events and the customers' next
due times commit together with the deletion, or not at all.

:func:`refresh_all_if_due` (every minute) re-evaluates every materialised segment over every
customer when the last full refresh is older than ``full_refresh_every_hours``, and records
what it had to correct as a ``refresh`` job row and in ``segment_membership_drift_total``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import Database
from crm_segment.builtins import ensure_builtin_segments
from crm_segment.config import settings
from crm_segment.evaluation.repository import EvaluationRepository
from crm_segment.evaluation.service import (
    compile_segments,
    dependency_levels,
    evaluate_customers,
    evaluate_segment_full,
)
from crm_segment.jobs.repository import JobRepository
from crm_segment.jobs.service import SCORES_LOCK
from crm_segment.models import EvaluationQueue, Job

log = logging.getLogger(__name__)

MEMBERSHIP_DRIFT = Counter(
    "segment_membership_drift",
    "Membership changes the periodic full refresh had to make (entries + exits)",
    ["kind"],
)

#: Job kind under which each full refresh is recorded (not run by the job runner).
REFRESH_KIND = "refresh"
#: ``pg_try_advisory_lock`` key: one full refresh at a time across workers.
_REFRESH_LOCK = 0x5E6_0001

_builtins_ready = False


async def _db_now(session: AsyncSession) -> datetime:
    """The database's clock (the transaction's start), which queue due times compare to."""
    now: datetime = (await session.execute(select(func.now()))).scalar_one()
    return now


async def materialise_stale(database: Database) -> int:
    """Fully evaluate every segment whose version is not materialised; returns how many."""
    async with database.unit_of_work() as session:
        stale = await EvaluationRepository(session).stale_segment_ids()
    done = 0
    for segment_id in stale:
        try:
            async with database.unit_of_work() as session:
                segment = await EvaluationRepository(session).claim_segment(segment_id)
                if segment is None or segment.evaluated_version >= segment.version:
                    continue  # another worker has it, or did it
                entered, exited = await evaluate_segment_full(
                    session, segment, await _db_now(session)
                )
                log.info(
                    "segment %s (%s) v%d materialised: %d entered, %d exited",
                    segment.id,
                    segment.name,
                    segment.version,
                    len(entered),
                    len(exited),
                )
                done += 1
        except Exception:  # a rule that no longer compiles must not block the others
            log.exception("segment %s could not be materialised", segment_id)
    return done


async def scores_unlocked(session: AsyncSession) -> bool:
    """Share the scores lock for this transaction, unless a batch job holds it.

    Batch jobs (RFM, model fit, clusters) rewrite most ``customer_score`` rows in one
    transaction; an evaluation batch updating some of the same rows in another order would
    deadlock with them. Jobs hold the lock exclusively, batches share it.
    """
    stmt = select(func.pg_try_advisory_xact_lock_shared(SCORES_LOCK))
    return bool((await session.execute(stmt)).scalar())


async def process_batch(database: Database, limit: int) -> int:
    """Claim, evaluate and remove up to ``limit`` due customers; returns how many."""
    async with database.unit_of_work() as session:
        if not await scores_unlocked(session):
            return 0  # a batch job is rewriting every score; come back when it has committed
        now = await _db_now(session)
        claim = (
            select(EvaluationQueue.customer_external_id)
            .where(EvaluationQueue.due_at <= now)
            .order_by(EvaluationQueue.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list((await session.execute(claim)).scalars().all())
        if not ids:
            return 0
        await session.execute(
            delete(EvaluationQueue).where(EvaluationQueue.customer_external_id.in_(ids))
        )
        await evaluate_customers(session, ids, now)
    return len(ids)


async def process_queue(database: Database) -> None:
    """Take due customers from the queue in batches, refresh their scores, re-evaluate their
    segments, publish entries/exits, schedule their next time-relative change."""
    global _builtins_ready
    if not _builtins_ready:
        async with database.unit_of_work() as session:
            await ensure_builtin_segments(session)
        _builtins_ready = True
    await materialise_stale(database)
    size = settings.evaluation_batch_size
    while await process_batch(database, size) == size:
        pass


async def refresh_all(database: Database) -> dict[str, Any]:
    """Re-evaluate every materialised segment in full (dependency order, one transaction
    each); returns and records (``refresh`` job row, metric, log) the drift corrected."""
    async with database.unit_of_work() as session:
        started = await _db_now(session)
        segments = await EvaluationRepository(session).all_segments()
        compiled = compile_segments(segments, started)
    order = [s.id for level in dependency_levels(segments, compiled) for s in level]
    drift: list[dict[str, Any]] = []
    checked = 0
    for segment_id in order:
        async with database.unit_of_work() as session:
            segment = await EvaluationRepository(session).claim_segment(segment_id)
            if (
                segment is None
                or segment.deleted_at is not None
                or segment.evaluated_version != segment.version
            ):
                continue  # being materialised, deleted meanwhile, or waiting to be materialised
            entered, exited = await evaluate_segment_full(session, segment, await _db_now(session))
            checked += 1
            if entered or exited:
                MEMBERSHIP_DRIFT.labels(segment.kind).inc(len(entered) + len(exited))
                drift.append(
                    {
                        "segment_id": str(segment.id),
                        "name": segment.name,
                        "kind": segment.kind,
                        "entered": len(entered),
                        "exited": len(exited),
                    }
                )
    result: dict[str, Any] = {
        "segments_checked": checked,
        "entered": sum(d["entered"] for d in drift),
        "exited": sum(d["exited"] for d in drift),
        "drift": drift,
    }
    async with database.unit_of_work() as session:
        session.add(
            Job(
                id=uuid.uuid4(),
                kind=REFRESH_KIND,
                status="succeeded",
                params={},
                result=result,
                started_at=started,
                finished_at=await _db_now(session),
            )
        )
    if drift:
        log.warning(
            "full refresh corrected drift in %d segments: %d entered, %d exited",
            len(drift),
            result["entered"],
            result["exited"],
            extra={"drift": drift},
        )
    else:
        log.info("full refresh: %d segments checked, no drift", checked)
    return result


async def refresh_all_if_due(database: Database) -> None:
    """Safety net: re-evaluate every segment for every customer when the last full refresh is
    older than the configured interval; report the drift it corrected."""
    every = timedelta(hours=settings.full_refresh_every_hours)
    if not every:
        return
    async with database.engine.connect() as lock_conn:
        locked = (
            await lock_conn.execute(select(func.pg_try_advisory_lock(_REFRESH_LOCK)))
        ).scalar()
        await lock_conn.commit()
        if not locked:
            return  # another worker is refreshing
        try:
            async with database.unit_of_work() as session:
                now = await _db_now(session)
                last = await JobRepository(session).last_finished(REFRESH_KIND)
            if last is not None and last.finished_at is not None and now - last.finished_at < every:
                return
            await refresh_all(database)
        finally:
            await lock_conn.execute(select(func.pg_advisory_unlock(_REFRESH_LOCK)))
            await lock_conn.commit()
