"""SQL of the behaviour intake: anonymous-id links and the set-based event insert."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_profile.database import driver_connection, lines

#: Columns of one stored event, in the order of :data:`EventRow`.
COLUMNS = (
    "event_id",
    "type",
    "customer_id",
    "customer_external_id",
    "anonymous_id",
    "occurred_at",
    "sku",
    "category",
    "value_minor",
    "properties",
)
EventRow = tuple[
    str,  # event_id
    str,  # type
    uuid.UUID | None,  # customer_id
    str | None,  # customer_external_id
    str | None,  # anonymous_id
    datetime,  # occurred_at
    str | None,  # sku
    str | None,  # category
    int | None,  # value_minor
    str,  # properties (JSON text)
]

#: The batch in one statement whatever its size: each column travels as one array, and an
#: ``event_id`` stored before is skipped by the primary key instead of failing the batch.
_INSERT = text(
    """
    INSERT INTO profile.behaviour_event (
        event_id, type, customer_id, customer_external_id, anonymous_id, occurred_at,
        sku, category, value_minor, properties
    )
    SELECT e, t, c, x, a, o, s, g, v, p::jsonb
    FROM unnest(
        CAST(:event_id AS text[]), CAST(:type AS text[]), CAST(:customer_id AS uuid[]),
        CAST(:customer_external_id AS text[]), CAST(:anonymous_id AS text[]),
        CAST(:occurred_at AS timestamptz[]), CAST(:sku AS text[]), CAST(:category AS text[]),
        CAST(:value_minor AS bigint[]), CAST(:properties AS text[])
    ) AS u(e, t, c, x, a, o, s, g, v, p)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
    """
)

_ANONYMOUS = (
    "SELECT array_agg(value), array_agg(customer_id) FROM profile.customer_identity "
    "WHERE kind = 'anonymous_id' AND value = ANY(string_to_array($1, E'\\n'))"
)


class BehaviourRepository:
    """Behaviour events and the identities they are joined on."""

    def __init__(self, session: AsyncSession) -> None:
        """Work inside ``session``'s transaction."""
        self.session = session

    async def linked_customers(self, anonymous_ids: Collection[str]) -> dict[str, uuid.UUID]:
        """The customer each of ``anonymous_ids`` was linked to, for those that were."""
        if not anonymous_ids:
            return {}
        driver = await driver_connection(self.session)
        values, customer_ids = await driver.fetchrow(_ANONYMOUS, lines(anonymous_ids))
        return dict(zip(values, customer_ids, strict=True)) if values else {}

    async def add_new(self, rows: Sequence[EventRow]) -> Sequence[str] | None:
        """Store the rows whose ``event_id`` is new; ``None`` if all were (usual), else those ids.

        Repeated ids are rare (a sender retrying a batch), so the rows are first sent with
        ``COPY`` inside a savepoint, PostgreSQL's cheapest way in; only when that meets a stored
        id is the savepoint rolled back and the batch inserted with ``ON CONFLICT DO NOTHING``.
        The savepoint is left for the commit to end: releasing it would be one more round trip.
        """
        driver = await driver_connection(self.session)
        await driver.execute("SAVEPOINT behaviour_intake")
        try:
            await driver.copy_records_to_table(
                "behaviour_event", schema_name="profile", columns=COLUMNS, records=rows
            )
        except asyncpg.UniqueViolationError:
            await driver.execute("ROLLBACK TO SAVEPOINT behaviour_intake")
            return await self.insert_new(rows)
        return None

    async def insert_new(self, rows: Sequence[EventRow]) -> Sequence[str]:
        """Insert the rows in one statement, skipping stored ids; the ids that were new."""
        params = dict(
            zip(COLUMNS, (list(column) for column in zip(*rows, strict=True)), strict=True)
        )
        result = await self.session.execute(_INSERT, params)
        return result.scalars().all()
