"""Segment's projection of profile customers: upserts, merges, erasure and export.

Every change is idempotent and safe to receive out of order: fields are taken from an event
only when it is newer than those the row holds (by ``ce-time``), merge status likewise, and an
erased customer's internal id and a digest of each of its external ids are kept so that an
event about it delivered late does not bring it back (:mod:`crm_segment.customers.tombstones`). A merge or unmerge re-roots the customers concerned in every projection
(``crm_segment.projections.reroot``); erasure deletes the customers' rows in every table of the
schema, and an export lists them all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.customers import tombstones
from crm_segment.customers.repository import CustomerRepository
from crm_segment.evaluation.queue import enqueue
from crm_segment.events import EXPORT_CONTRIBUTED, ExportContributedV1
from crm_segment.models import Customer, outbox
from crm_segment.projections.reroot import reroot

#: Columns of a projection row shown in an export (all of them: it is the customer's data).
EXPORTED = [c.name for c in Customer.__table__.columns]


async def project(
    session: AsyncSession,
    external_id: str,
    customer_id: uuid.UUID,
    values: dict[str, Any],
    at: datetime,
) -> None:
    """Take a created/updated customer's fields as of ``at``; re-evaluate its root if taken."""
    repo = CustomerRepository(session)
    if not await repo.any_erased([customer_id]):
        root = await repo.upsert_fields(external_id, customer_id, values, at)
        if root is not None:
            await enqueue(session, [root])


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
        await reroot(session, [duplicate_external_id])


async def unmerged(
    session: AsyncSession, duplicate_external_id: str, duplicate_id: uuid.UUID, at: datetime
) -> None:
    """The duplicate is its own customer again."""
    repo = CustomerRepository(session)
    if not await repo.any_erased([duplicate_id]):
        await repo.set_status(duplicate_external_id, duplicate_id, "active", None, at)
        await reroot(session, [duplicate_external_id])


async def erase(
    session: AsyncSession,
    external_ids: Sequence[str],
    customer_ids: Sequence[uuid.UUID],
    at: datetime,
) -> None:
    """Delete everything segment holds about these customers; refuse their late events.

    Every table keyed by a customer loses their rows (projections, scores, memberships, the
    queue); a survivor outside the erased set that they counted for is re-evaluated. Their
    internal ids (``erased_customer``) and the digests of their external ids
    (``erased_external_id``, see :mod:`crm_segment.customers.tombstones`) are remembered, so
    that events about them delivered late are skipped.
    """
    repo = CustomerRepository(session)
    survivors = await repo.roots_outside(external_ids)
    await repo.delete_projections(external_ids)
    deleted = await repo.delete(external_ids, customer_ids)
    await repo.tombstone(sorted({*customer_ids, *(i for i, _ in deleted)}), at)
    erased_ids = {*external_ids, *(e for _, e in deleted)}
    await repo.tombstone_external_ids([tombstones.digest(e) for e in erased_ids], at)
    await repo.delete_dead_letters(external_ids)
    await enqueue(session, survivors)


async def export_part(session: AsyncSession, external_ids: Sequence[str]) -> dict[str, Any]:
    """Everything segment holds about these customers, as JSON.

    ``customers`` (the projection rows), ``orders`` (each with its ``lines``), ``interactions``
    (daily behaviour aggregates), ``consents``, ``tags``, ``loyalty``, ``scores`` and
    ``segments`` (current memberships with the segment's name).
    """
    repo = CustomerRepository(session)
    rows = await repo.by_external_ids(external_ids)
    customers = [{name: getattr(row, name) for name in EXPORTED} for row in rows]
    part: dict[str, Any] = to_jsonable_python(
        {"customers": customers, **await repo.export_rows(external_ids)}
    )
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
