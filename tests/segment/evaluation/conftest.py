"""Fixtures of the evaluator tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import delete, select

from crm_common.db import Database
from crm_segment.evaluation import worker
from crm_segment.models import (
    Customer,
    CustomerScore,
    CustomerTag,
    EvaluationQueue,
    InteractionDaily,
    Job,
    Order,
    Segment,
    outbox_table,
)


@dataclass
class Committed:
    """What a test committed, deleted afterwards."""

    customers: list[str] = field(default_factory=list)
    segments: list[uuid.UUID] = field(default_factory=list)
    jobs_before: set[uuid.UUID] = field(default_factory=set)


@pytest.fixture
async def committed(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Committed]:
    """Committed rows of one test, cleaned up after it; built-ins are not created."""
    monkeypatch.setattr(worker, "_builtins_ready", True)
    record = Committed()
    async with database.unit_of_work() as session:
        record.jobs_before = set((await session.execute(select(Job.id))).scalars().all())
    yield record
    async with database.unit_of_work() as session:
        ids = record.customers
        await session.execute(delete(Segment).where(Segment.id.in_(record.segments)))
        await session.execute(delete(Customer).where(Customer.customer_external_id.in_(ids)))
        await session.execute(delete(Order).where(Order.root_external_id.in_(ids)))
        await session.execute(
            delete(InteractionDaily).where(InteractionDaily.root_external_id.in_(ids))
        )
        await session.execute(
            delete(CustomerScore).where(CustomerScore.customer_external_id.in_(ids))
        )
        await session.execute(delete(CustomerTag).where(CustomerTag.root_external_id.in_(ids)))
        await session.execute(
            delete(EvaluationQueue).where(EvaluationQueue.customer_external_id.in_(ids))
        )
        await session.execute(delete(outbox_table).where(outbox_table.c.subject_id.in_(ids)))
        await session.execute(
            delete(Job).where(Job.kind == worker.REFRESH_KIND, Job.id.not_in(record.jobs_before))
        )
