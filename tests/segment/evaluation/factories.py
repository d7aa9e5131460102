"""Rows the evaluator tests build: customers, orders, interactions, segments."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import Database
from crm_common.events import unpack_body
from crm_segment.events import MEMBERSHIP_CHANGED, TAG_CHANGED
from crm_segment.models import (
    Customer,
    CustomerTag,
    EvaluationQueue,
    InteractionDaily,
    Order,
    Segment,
    SegmentMember,
    outbox_table,
)
from tests.segment.conftest import published


def token() -> str:
    """A short unique suffix, so committed rows of different tests never collide."""
    return uuid.uuid4().hex[:10]


async def customer(
    session: AsyncSession, external_id: str, *, country: str = "DE", status: str = "active"
) -> Customer:
    """An (active, root) customer in the projection."""
    row = Customer(
        customer_external_id=external_id,
        customer_id=uuid.uuid4(),
        root_external_id=external_id,
        status=status,
        country=country,
    )
    session.add(row)
    await session.flush()
    return row


async def order(
    session: AsyncSession, external_id: str, placed_at: datetime, **values: Any
) -> Order:
    """A placed order of ``external_id`` (its own root)."""
    row = Order(
        order_external_id=f"o-{token()}",
        order_id=uuid.uuid4(),
        customer_external_id=external_id,
        root_external_id=external_id,
        placed_at=placed_at,
        currency="EUR",
        total_minor=values.pop("total_minor", 1000),
        **values,
    )
    session.add(row)
    await session.flush()
    return row


async def interactions(
    session: AsyncSession, external_id: str, day: date, kind: str, count: int, last_at: datetime
) -> None:
    """``count`` interactions of ``kind`` on ``day``."""
    session.add(
        InteractionDaily(
            customer_external_id=external_id,
            root_external_id=external_id,
            day=day,
            type=kind,
            category="",
            sku="",
            count=count,
            last_at=last_at,
        )
    )
    await session.flush()


async def segment(
    session: AsyncSession,
    rule: dict[str, Any],
    *,
    kind: str = "rule",
    tag: str | None = None,
    materialised: bool = True,
    enabled: bool = True,
    name: str | None = None,
) -> Segment:
    """A segment whose (empty) membership is materialised unless ``materialised=False``."""
    row = Segment(
        id=uuid.uuid4(),
        name=name or f"seg-{token()}",
        kind=kind,
        key=tag,
        tag=tag,
        rule=rule,
        enabled=enabled,
        version=1,
        evaluated_version=1 if materialised else 0,
    )
    session.add(row)
    await session.flush()
    return row


async def members(session: AsyncSession, segment_id: uuid.UUID) -> list[str]:
    """External ids of the segment's members, sorted."""
    rows = await session.execute(
        select(SegmentMember.customer_external_id)
        .where(SegmentMember.segment_id == segment_id)
        .order_by(SegmentMember.customer_external_id)
    )
    return list(rows.scalars().all())


async def count_of(session: AsyncSession, segment_id: uuid.UUID) -> int:
    """The segment's stored ``members_count``."""
    stmt = select(Segment.members_count).where(Segment.id == segment_id)
    return int((await session.execute(stmt)).scalar_one())


async def changes(session: AsyncSession, segment_id: uuid.UUID) -> list[tuple[str, str]]:
    """``(customer, entered|exited)`` of every membership event of the segment in the outbox."""
    events = await published(session, MEMBERSHIP_CHANGED.subject)
    return [
        (e["customer_external_id"], e["change"])
        for e in events
        if e["segment_id"] == str(segment_id)
    ]


async def tag_changes(session: AsyncSession, tag: str) -> list[tuple[str, str]]:
    """``(customer, added|removed)`` of every tag event of ``tag`` in the outbox."""
    events = await published(session, TAG_CHANGED.subject)
    return [(e["customer_external_id"], e["change"]) for e in events if e["tag"] == tag]


async def derived_tags(session: AsyncSession, tag: str) -> list[str]:
    """Customers carrying ``tag`` with origin ``segment``."""
    rows = await session.execute(
        select(CustomerTag.customer_external_id)
        .where(CustomerTag.tag == tag, CustomerTag.origin == "segment")
        .order_by(CustomerTag.customer_external_id)
    )
    return list(rows.scalars().all())


async def due(session: AsyncSession, external_id: str) -> datetime | None:
    """When the customer is queued for re-evaluation (None: not queued)."""
    stmt = (
        select(EvaluationQueue.due_at)
        .where(EvaluationQueue.customer_external_id == external_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def membership_events(database: Database, segment_id: uuid.UUID) -> list[tuple[str, str]]:
    """``(customer, entered|exited)`` of the segment's committed membership events, in order."""
    async with database.unit_of_work() as session:
        rows = await session.execute(
            select(outbox_table.c.payload)
            .where(outbox_table.c.subject == MEMBERSHIP_CHANGED.subject)
            .order_by(outbox_table.c.seq)
        )
        payloads: list[dict[str, Any]] = [orjson.loads(unpack_body(r.payload)) for r in rows]
    return [
        (p["customer_external_id"], p["change"])
        for p in payloads
        if p["segment_id"] == str(segment_id)
    ]
