"""Tables and helpers of the scratch ``plumbing`` schema used by the messaging tests.

Imported by ``conftest.py`` and by the child processes the kill tests start.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, Uuid, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.audit import make_audit_table
from crm_common.db import Database, make_metadata
from crm_common.events import Envelope, make_dead_letter_table, make_inbox_table, make_outbox_table

SCHEMA = "plumbing"
metadata: MetaData = make_metadata(SCHEMA)
outbox_table = make_outbox_table(metadata)
inbox_table = make_inbox_table(metadata)
dead_letter_table = make_dead_letter_table(metadata)
audit_table = make_audit_table(metadata)
effects = Table(
    "effects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
)


async def effect_count(db: Database, event_id: uuid.UUID | None = None) -> int:
    """Rows in ``plumbing.effects`` (for one event when ``event_id`` is given)."""
    stmt = select(func.count()).select_from(effects)
    if event_id is not None:
        stmt = stmt.where(effects.c.event_id == event_id)
    async with db.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def record_effect(session: AsyncSession, envelope: Envelope) -> None:
    """A consumer handler whose effect is one row per handled event."""
    await session.execute(
        effects.insert().values(event_id=envelope.id, note=str(envelope.data.get("note", "")))
    )


def sample_event(subject: str, note: str = "x", event_id: uuid.UUID | None = None) -> Envelope:
    """An event as a producer would enqueue it."""
    return Envelope(
        subject=subject,
        type=f"{subject}.v1",
        source="/crm/plumbing",
        subject_id="agg-1",
        data={"note": note},
        id=event_id or uuid.uuid4(),
    )
