"""SQL of GDPR export and erasure: which rows of the profile schema are about one customer.

The map is derived from the schema rather than listed by hand, so a table added later is
exported and erased without touching this module, as long as it names its customer in one of
the ways below (and ``tests/profile/gdpr/test_plan.py`` fails for a table that does not):

- ``customer`` itself: the rows of the merge group;
- any column with a foreign key to ``customer.id`` (``consent.customer_id``,
  ``merge.survivor_id``, ...);
- a column named ``customer_id`` without a foreign key (``behaviour_event``, ``export_job``);
- a column named ``customer_external_id`` (events and orders keep the id they arrived with);
- a column named ``anonymous_id`` on a row with no customer, when that id was linked to the group;
- a foreign key to a table in this map (``order_line`` → ``order``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    or_,
    select,
    update,
)

from crm_common.repository import RepositoryBase
from crm_profile.customers.repository import CustomerRepository
from crm_profile.models import (
    Customer,
    CustomerIdentity,
    ErasureAudit,
    ExportJob,
    audit_table,
    dead_letter_table,
    metadata,
)

#: Tables left out of the map, and why; every other table must name its customer somehow.
HANDLED_APART: dict[str, str] = {
    "outbox": "events waiting for the relay; each row is deleted once published",
    "inbox": "ids of handled events, nothing about anyone",
    "dead_letter": "messages that failed; those naming the customer are deleted on erasure",
    "audit_log": "who changed what; entries naming the customer are anonymised on erasure",
    "erasure_audit": "the record that an erasure happened: internal id and row counts only",
}
#: Tables erased with the customer but not part of the customer's export document.
NOT_EXPORTED = frozenset({"export_job"})

_CUSTOMER: Table = Customer.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class DataSubject:
    """Whom an export or erasure is about: a customer and everything merged into it."""

    ids: list[uuid.UUID]
    external_ids: list[str]
    anonymous_ids: list[str]
    #: Email addresses and phone numbers of the group, to find them in logs and dead letters.
    contacts: list[str]

    @property
    def needles(self) -> list[str]:
        """The group's identifiers as JSON strings (``"c-1"``), to search JSON documents."""
        return [orjson.dumps(v).decode() for v in (*self.external_ids, *self.contacts)]


def criterion(table: Table, subject: DataSubject) -> ColumnElement[bool] | None:
    """Rows of ``table`` about ``subject``; ``None`` when the table has no customer link."""
    if table.name in HANDLED_APART:
        return None
    if table is _CUSTOMER:
        return table.c.id.in_(subject.ids)
    found: list[ColumnElement[bool]] = []
    for column in table.c:
        for fk in column.foreign_keys:
            parent = fk.column.table
            if parent is _CUSTOMER:
                found.append(column.in_(subject.ids))
            elif isinstance(parent, Table) and parent is not table:
                parent_rows = criterion(parent, subject)
                if parent_rows is not None:
                    found.append(column.in_(select(fk.column).where(parent_rows)))
    columns = table.c
    if "customer_id" in columns and not columns.customer_id.foreign_keys:
        found.append(columns.customer_id.in_(subject.ids))
    if "customer_external_id" in columns:
        found.append(columns.customer_external_id.in_(subject.external_ids))
    if "anonymous_id" in columns:
        anonymous: ColumnElement[bool] = columns.anonymous_id.in_(subject.anonymous_ids)
        if "customer_id" in columns:
            anonymous = and_(anonymous, columns.customer_id.is_(None))
        found.append(anonymous)
    return or_(*found) if found else None


def customer_tables() -> list[Table]:
    """Every table holding rows about customers, parents before children."""
    probe = DataSubject([], [], [], [])
    return [t for t in metadata.sorted_tables if criterion(t, probe) is not None]


def _escape_like(value: bytes) -> bytes:
    """``value`` as a literal inside a ``LIKE`` pattern (backslash is the escape character)."""
    return value.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")


class GdprRepository(RepositoryBase[ExportJob]):
    """Export jobs, and every row of the profile schema about a data subject."""

    model = ExportJob

    async def lock(self, customer_id: uuid.UUID) -> Customer | None:
        """The customer row, locked and re-read (it may have changed since it was resolved)."""
        stmt = (
            select(Customer)
            .where(Customer.id == customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def subject(self, survivor: Customer) -> DataSubject:
        """Lock the merge group of ``survivor`` (locked already) and collect what identifies it."""
        ids = await CustomerRepository(self.session).group_ids(survivor.id)
        rows = (
            await self.session.execute(
                select(Customer.id, Customer.external_id, Customer.email, Customer.phone)
                .where(Customer.id.in_(ids))
                .order_by(Customer.id != survivor.id, Customer.external_id)
                .with_for_update()
            )
        ).all()
        anonymous = await self.session.execute(
            select(CustomerIdentity.value).where(CustomerIdentity.customer_id.in_(ids))
        )
        return DataSubject(
            ids=[r.id for r in rows],
            external_ids=[r.external_id for r in rows],
            anonymous_ids=sorted(set(anonymous.scalars())),
            contacts=sorted({c for r in rows for c in (r.email, r.phone) if c}),
        )

    async def rows(self, table: Table, subject: DataSubject) -> list[dict[str, Any]]:
        """Every row of ``table`` about ``subject``, in primary-key order."""
        where = criterion(table, subject)
        if where is None:
            return []
        stmt = select(table).where(where).order_by(*table.primary_key.columns)
        return [dict(r) for r in (await self.session.execute(stmt)).mappings()]

    async def delete_rows(self, table: Table, subject: DataSubject) -> int:
        """Delete every row of ``table`` about ``subject``; how many were deleted."""
        where = criterion(table, subject)
        if where is None:
            return 0
        result = await self.session.execute(delete(table).where(where))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def anonymise_audit(self, subject: DataSubject) -> int:
        """Strip the subject's identifiers from audit entries, keeping who did what and when."""
        t = audit_table
        actors = [f"customer:{e}" for e in subject.external_ids]
        details = cast(t.c.details, Text)
        naming: list[ColumnElement[bool]] = [
            t.c.target_id.in_(subject.external_ids),
            t.c.actor.in_(actors),
        ]
        naming += [details.contains(n, autoescape=True) for n in subject.needles]
        result = await self.session.execute(
            update(t)
            .where(or_(*naming))
            .values(
                target_id="erased",
                details={},
                actor=case((t.c.actor.in_(actors), "customer:erased"), else_=t.c.actor),
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def delete_dead_letters(self, subject: DataSubject) -> int:
        """Delete dead letters about the subject: they could otherwise be replayed after erasure."""
        t = dead_letter_table
        naming: list[ColumnElement[bool]] = [
            t.c.headers["ce-subject"].astext.in_(subject.external_ids)
        ]
        for i, needle in enumerate(subject.needles):
            pattern = b"%" + _escape_like(needle.encode()) + b"%"
            naming.append(t.c.body.like(bindparam(f"needle_{i}", pattern, type_=LargeBinary)))
        result = await self.session.execute(delete(t).where(or_(false(), *naming)))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def add_erasure_audit(
        self, customer_id: uuid.UUID, requested_by: str, counts: dict[str, int]
    ) -> ErasureAudit:
        """Record that ``customer_id`` was erased (no personal data)."""
        record = ErasureAudit(
            id=uuid.uuid4(), customer_id=customer_id, requested_by=requested_by, counts=counts
        )
        self.session.add(record)
        await self.session.flush()
        await self.session.refresh(record)
        return record

    async def add_job(
        self,
        customer_id: uuid.UUID,
        expected_parts: Sequence[str],
        requested_by: str,
        profile_part: dict[str, Any],
        completed_at: datetime | None,
    ) -> ExportJob:
        """A new export job holding profile's own part."""
        job = ExportJob(
            id=uuid.uuid4(),
            customer_id=customer_id,
            status="done" if completed_at else "collecting",
            expected_parts=list(expected_parts),
            parts={"profile": profile_part},
            requested_by=requested_by,
            completed_at=completed_at,
        )
        self.session.add(job)
        await self.session.flush()
        await self.session.refresh(job)
        return job

    async def job(self, export_id: uuid.UUID, *, for_update: bool = False) -> ExportJob | None:
        """The export job with this id."""
        stmt = select(ExportJob).where(ExportJob.id == export_id)
        if for_update:
            stmt = stmt.with_for_update()
        return await self.get_one_or_none(stmt)
