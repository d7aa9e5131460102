"""GDPR rules: export a customer's data from every service, and erase it everywhere.

An export is a job: profile writes its own part at once, in the request's transaction, and
publishes ``crm.profile.export.requested``; every service listed in ``PROFILE_EXPORT_PARTS``
answers with ``crm.<svc>.export.contributed`` and the job is done when every part is in. A
service added later plugs in by answering that event and being listed; nothing here changes.

An erasure deletes, within the request, every row of the profile schema about the customer and
every duplicate merged into it, and publishes ``crm.profile.customer.erased`` so that every other
service does the same. What remains is an :class:`ErasureAudit` (internal id, who asked, row
counts per table) and nothing personal.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.audit import actor_name
from crm_common.auth import ApiKeyPrincipal, CustomerPrincipal
from crm_profile.config import settings
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.customers.repository import CustomerRepository
from crm_profile.events import (
    CUSTOMER_ERASED,
    EXPORT_REQUESTED,
    CustomerErasedV1,
    ExportRequestedV1,
)
from crm_profile.gdpr.errors import ExportNotFound
from crm_profile.gdpr.repository import (
    NOT_EXPORTED,
    DataSubject,
    GdprRepository,
    customer_tables,
)
from crm_profile.gdpr.schemas import ExportJobRead, ExportRead
from crm_profile.models import Customer, ErasureAudit, ExportJob, audit, outbox

Actor = ApiKeyPrincipal | CustomerPrincipal
PROFILE_PART = "profile"
logger = logging.getLogger("crm.profile.gdpr")


def _redact(table: Table, row: dict[str, Any], subject: DataSubject) -> dict[str, Any]:
    """Hide what a row says about customers outside the subject's merge group.

    A merge that was undone links the subject with another customer: the other customer's id
    is blanked and, when the other one was the survivor, so are the survivor's fields the merge
    had overwritten (``filled_fields``), which are that customer's data, not the subject's.
    """
    out = dict(row)
    for column in table.c:
        points_at_customer = any(fk.column.table.name == "customer" for fk in column.foreign_keys)
        if points_at_customer and out.get(column.name) not in (None, *subject.ids):
            out[column.name] = None
    if table.name == "merge" and row.get("survivor_id") not in subject.ids:
        out["filled_fields"] = {}
    return out


async def _profile_part(repo: GdprRepository, subject: DataSubject) -> dict[str, Any]:
    """Everything the profile schema holds about ``subject``, one list of rows per table."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in customer_tables():
        if table.name not in NOT_EXPORTED:
            rows = await repo.rows(table, subject)
            tables[table.name] = [_redact(table, row, subject) for row in rows]
    document = {
        "customer_external_id": subject.external_ids[0],
        "merged_external_ids": subject.external_ids[1:],
        "tables": tables,
    }
    result: dict[str, Any] = to_jsonable_python(document)
    return result


async def _subject(repo: GdprRepository, customer: Customer) -> DataSubject:
    """Lock ``customer`` (a survivor) and its merge group; who the export or erasure is about.

    Another request may have merged or erased the customer since it was resolved; the row is
    re-read under the lock so the group is exactly the one at the time of the change.
    """
    locked = await repo.lock(customer.id)
    if locked is None:
        raise CustomerNotFound(f"no customer with external id {customer.external_id!r}")
    if locked.merged_into_id is not None:
        raise CustomerMerged(f"customer {customer.external_id!r} was just merged; try again")
    return await repo.subject(locked)


async def request_export(session: AsyncSession, customer: Customer, actor: Actor) -> ExportJob:
    """Start an export of ``customer`` (a survivor) with profile's part already in it."""
    repo = GdprRepository(session)
    subject = await _subject(repo, customer)
    expected = [PROFILE_PART, *settings.export_parts]
    completed_at = None if settings.export_parts else datetime.now(UTC)
    job = await repo.add_job(
        customer.id, expected, actor_name(actor), await _profile_part(repo, subject), completed_at
    )
    requested = ExportRequestedV1(
        export_id=str(job.id),
        customer_external_id=customer.external_id,
        customer_external_ids=subject.external_ids,
    )
    await outbox.enqueue(session, EXPORT_REQUESTED.envelope(requested, subject_id=str(job.id)))
    if isinstance(actor, ApiKeyPrincipal):
        await audit.record(
            session,
            actor=actor,
            action="customer.export_requested",
            target_type="customer",
            target_id=str(customer.id),
            details={"export_id": str(job.id)},
        )
    return job


async def get_export(
    session: AsyncSession, export_id: uuid.UUID, *, owner: Customer | None = None
) -> ExportJob:
    """The export job ``export_id``; with ``owner``, only an export of that customer's data."""
    job = await GdprRepository(session).job(export_id)
    if job is None:
        raise ExportNotFound(f"no export with id {export_id}")
    if owner is not None:
        group = await CustomerRepository(session).group_ids(owner.id)
        if job.customer_id not in group:
            raise ExportNotFound(f"no export with id {export_id}")
    return job


def view(job: ExportJob, *, now: datetime | None = None) -> ExportRead:
    """The API representation of ``job``; the document only once every part is in."""
    now = now or datetime.now(UTC)
    done = job.status == "done"
    overdue_after = timedelta(seconds=settings.export_overdue_seconds)
    return ExportRead(
        id=job.id,
        status="done" if done else "collecting",
        expected_parts=list(job.expected_parts),
        received_parts=[p for p in job.expected_parts if p in job.parts],
        missing_parts=[p for p in job.expected_parts if p not in job.parts],
        overdue=not done and now - job.requested_at > overdue_after,
        requested_at=job.requested_at,
        completed_at=job.completed_at,
        document={p: job.parts[p] for p in job.expected_parts} if done else None,
    )


def summary(job: ExportJob) -> ExportJobRead:
    """``job`` without its document (the answer to a new export request)."""
    return ExportJobRead.model_validate(view(job).model_dump(exclude={"document"}))


async def store_part(
    session: AsyncSession, export_id: uuid.UUID, service: str, data: dict[str, Any]
) -> None:
    """Keep ``service``'s part of export ``export_id``; the job is done when all parts are in."""
    job = await GdprRepository(session).job(export_id, for_update=True)
    if job is None:  # erased since, or never requested here: nothing to keep it in
        logger.info("part for an unknown export dropped", extra={"service": service})
        return
    if service not in job.expected_parts:
        logger.warning("part not expected by this export dropped", extra={"service": service})
        return
    if job.status == "done":
        return
    job.parts = {**job.parts, service: data}
    if all(part in job.parts for part in job.expected_parts):
        job.status = "done"
        job.completed_at = datetime.now(UTC)
    await session.flush()


async def erase(session: AsyncSession, customer: Customer, actor: Actor) -> ErasureAudit:
    """Delete every row about ``customer`` (a survivor) and its merge group; announce it."""
    repo = GdprRepository(session)
    subject = await _subject(repo, customer)
    counts: dict[str, int] = {}
    for table in reversed(customer_tables()):  # children before the rows they point at
        counts[table.name] = await repo.delete_rows(table, subject)
    counts["audit_log_anonymised"] = await repo.anonymise_audit(subject)
    counts["dead_letter"] = await repo.delete_dead_letters(subject)
    requested_by = actor_name(actor) if isinstance(actor, ApiKeyPrincipal) else "customer"
    record = await repo.add_erasure_audit(customer.id, requested_by, counts)
    if isinstance(actor, ApiKeyPrincipal):
        await audit.record(
            session,
            actor=actor,
            action="customer.erased",
            target_type="customer",
            target_id=str(customer.id),
            details={"erasure_id": str(record.id)},
        )
    erased = CustomerErasedV1(
        customer_id=str(customer.id),
        customer_external_id=customer.external_id,
        erased_external_ids=subject.external_ids,
        erased_customer_ids=[str(i) for i in subject.ids],
        erased_at=record.erased_at,
    )
    await outbox.enqueue(session, CUSTOMER_ERASED.envelope(erased, subject_id=customer.external_id))
    session.expunge(customer)
    return record
