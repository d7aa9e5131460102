"""Segment's projection of profile customers: upserts, merges, erasure and export.

Every change is idempotent and safe to receive out of order: fields are taken from an event
only when it is newer than those the row holds (by ``ce-time``), merge status likewise, and an
erased customer's internal id is kept so that an event about it delivered late does not bring
it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.customers.repository import CustomerRepository
from crm_segment.events import EXPORT_CONTRIBUTED, ExportContributedV1
from crm_segment.models import Customer, outbox

#: Columns of a projection row shown in an export (all of them: it is the customer's data).
EXPORTED = [c.name for c in Customer.__table__.columns]


async def project(
    session: AsyncSession,
    external_id: str,
    customer_id: uuid.UUID,
    values: dict[str, Any],
    at: datetime,
) -> None:
    """Take a created/updated customer's fields as of ``at``."""
    repo = CustomerRepository(session)
    if not await repo.any_erased([customer_id]):
        await repo.upsert_fields(external_id, customer_id, values, at)


async def merged(
    session: AsyncSession,
    duplicate_external_id: str,
    duplicate_id: uuid.UUID,
    survivor_external_id: str,
    survivor_id: uuid.UUID,
    at: datetime,
) -> None:
    """The duplicate now belongs to the survivor."""
    repo = CustomerRepository(session)
    if not await repo.any_erased([duplicate_id, survivor_id]):
        await repo.set_status(
            duplicate_external_id, duplicate_id, "merged", survivor_external_id, at
        )


async def unmerged(
    session: AsyncSession, duplicate_external_id: str, duplicate_id: uuid.UUID, at: datetime
) -> None:
    """The duplicate is its own customer again."""
    repo = CustomerRepository(session)
    if not await repo.any_erased([duplicate_id]):
        await repo.set_status(duplicate_external_id, duplicate_id, "active", None, at)


async def erase(
    session: AsyncSession,
    external_ids: Sequence[str],
    customer_ids: Sequence[uuid.UUID],
    at: datetime,
) -> None:
    """Delete everything segment holds about these customers; refuse their late events."""
    repo = CustomerRepository(session)
    deleted = await repo.delete(external_ids, customer_ids)
    await repo.tombstone(sorted({*customer_ids, *deleted}), at)
    await repo.delete_dead_letters(external_ids)


async def export_part(session: AsyncSession, external_ids: Sequence[str]) -> dict[str, Any]:
    """Everything segment holds about these customers, as JSON."""
    rows = await CustomerRepository(session).by_external_ids(external_ids)
    customers = [{name: getattr(row, name) for name in EXPORTED} for row in rows]
    part: dict[str, Any] = to_jsonable_python({"customers": customers})
    return part


async def contribute_export(
    session: AsyncSession, export_id: str, customer_external_id: str, external_ids: Sequence[str]
) -> None:
    """Answer an export request with segment's part (published through the outbox)."""
    contributed = ExportContributedV1(
        export_id=export_id,
        customer_external_id=customer_external_id,
        service="segment",
        data=await export_part(session, external_ids),
    )
    await outbox.enqueue(session, EXPORT_CONTRIBUTED.envelope(contributed, subject_id=export_id))
