"""Transactional outbox: events are rows written in the caller's transaction; a relay publishes them.

The relay claims a batch with ``FOR UPDATE SKIP LOCKED`` (so several replicas share the work
without publishing the same row twice), publishes each with ``Nats-Msg-Id`` = event id, waits for
every PubAck, and only then deletes the rows in the same transaction. A relay that dies before
that commit leaves the rows in place; they are published again and JetStream drops the copies
inside the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors
import orjson
from nats.js import JetStreamContext
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import Database
from crm_common.events.envelope import CONTENT_ENCODING, Envelope, is_packed, pack_body
from crm_common.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from crm_common.telemetry import current_trace_headers, producer_span

__all__ = ["Outbox", "OutboxRelay", "make_outbox_table"]

logger = logging.getLogger("crm.outbox")


def make_outbox_table(metadata: MetaData) -> Table:
    """The ``outbox`` table in ``metadata``'s schema (migrated by the service's own Alembic tree)."""
    return Table(
        "outbox",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", Uuid, nullable=False, unique=True),
        Column("subject", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("subject_id", Text, nullable=False),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("trace", JSONB, nullable=False, server_default="{}"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


#: The columns an enqueued event fills, in the order of :func:`_values`.
_COLUMNS = ("id", "subject", "type", "source", "subject_id", "time", "payload", "trace")


def _values(envelope: Envelope, trace: dict[str, str]) -> tuple[Any, ...]:
    """The outbox row of ``envelope``, column by column (``_COLUMNS``)."""
    return (
        envelope.id,
        envelope.subject,
        envelope.type,
        envelope.source,
        envelope.subject_id,
        envelope.time,
        pack_body(envelope.body()),
        envelope.trace_headers or trace,
    )


def _row(envelope: Envelope, trace: dict[str, str]) -> dict[str, Any]:
    return dict(zip(_COLUMNS, _values(envelope, trace), strict=True))


def _headers(row: Any) -> dict[str, str]:
    """CloudEvents headers of a stored outbox row."""
    envelope = Envelope(
        subject=row["subject"],
        type=row["type"],
        source=row["source"],
        subject_id=row["subject_id"],
        data={},
        id=row["id"],
        time=row["time"],
    )
    headers = envelope.headers()
    if is_packed(row["payload"]):
        headers[CONTENT_ENCODING[0]] = CONTENT_ENCODING[1]
    return headers


class Outbox:
    """A service's outbox: ``enqueue`` inside the caller's transaction, never publish directly."""

    def __init__(self, table: Table) -> None:
        """Wrap the service's outbox table."""
        self.table = table
        placeholders = ", ".join(f"${i}" for i in range(1, len(_COLUMNS) + 1))
        self._driver_insert = (
            f"INSERT INTO {table.fullname} ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
        )

    async def enqueue(self, session: AsyncSession, event: Envelope) -> None:
        """Add ``event`` to the caller's transaction; it is published only if that commits."""
        await session.execute(insert(self.table).values(_row(event, current_trace_headers())))

    async def enqueue_many(self, session: AsyncSession, events: Sequence[Envelope]) -> None:
        """Add several events in one round trip (executemany)."""
        if events:
            trace = current_trace_headers()
            await session.execute(insert(self.table), [_row(e, trace) for e in events])

    async def enqueue_many_on(
        self, connection: asyncpg.Connection, events: Sequence[Envelope]
    ) -> None:
        """:meth:`enqueue_many` on the asyncpg connection of the caller's transaction.

        For bulk writers already working on the driver: SQLAlchemy's compilation and parameter
        processing cost more CPU than the ``INSERT`` of a large payload itself. The rows are the
        same (the trace headers sent as JSON text, which the ``jsonb`` column parses).
        """
        if events:
            trace = current_trace_headers()
            rows = []
            for event in events:
                *values, headers = _values(event, trace)
                rows.append((*values, orjson.dumps(headers).decode()))
            await connection.executemany(self._driver_insert, rows)


class OutboxRelay:
    """Publishes committed outbox rows to JetStream and deletes them once acknowledged."""

    def __init__(
        self,
        database: Database,
        table: Table,
        js: JetStreamContext,
        *,
        service: str,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        busy_interval: float = 0.02,
        ack_timeout: float = 10.0,
    ) -> None:
        """Relay ``table`` of ``database`` to ``js`` in batches of ``batch_size``.

        After a round that found nothing the relay waits ``poll_interval``; after one that
        published rows it looks again after ``busy_interval``, so that under load an event
        waits tens of milliseconds for its turn rather than a whole poll interval.
        """
        self.database = database
        self.table = table
        self.js = js
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.busy_interval = min(busy_interval, poll_interval)
        name = table.fullname
        self._claim = (
            f"SELECT seq, {', '.join(_COLUMNS)} FROM {name} "
            "ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"
        )
        self._delete_published = f"DELETE FROM {name} WHERE seq = ANY($1::bigint[])"
        self.ack_timeout = ack_timeout
        self.published = 0
        self.duplicates = 0

    async def publish_batch(self) -> int:
        """Claim, publish and delete one batch; returns how many rows were published."""
        async with self.database.engine.connect() as conn:
            # On the driver: a round is four statements, and SQLAlchemy's compilation and row
            # processing cost the relay more CPU than publishing a row did (bench/README.md).
            driver: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
            async with driver.transaction():
                published = await self._publish_claimed(driver)
        if published is None:
            return 0
        rows, acks = published
        duplicates = sum(1 for ack in acks if ack.duplicate)
        self.published += rows - duplicates
        self.duplicates += duplicates
        OUTBOX_PUBLISHED.labels(self.service, "false").inc(rows - duplicates)
        OUTBOX_PUBLISHED.labels(self.service, "true").inc(duplicates)
        return rows

    async def _publish_claimed(self, driver: asyncpg.Connection) -> tuple[int, list[Any]] | None:
        """Claim, publish and delete inside ``driver``'s transaction; ``None`` if nothing waits."""
        rows = await driver.fetch(self._claim, self.batch_size)
        if not rows:
            return None
        futures: list[asyncio.Future[Any]] = []
        try:
            for row in rows:
                headers = _headers(row)
                with producer_span(row["subject"], row["trace"], headers):
                    futures.append(
                        await self.js.publish_async(row["subject"], row["payload"], headers=headers)
                    )
            acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=self.ack_timeout)
        except BaseException:
            for future in futures:  # release the client's in-flight slots
                future.cancel()
            raise
        await self._delete(driver, [r["seq"] for r in rows])
        return len(rows), acks

    async def _delete(self, driver: asyncpg.Connection, seqs: list[int]) -> None:
        """Delete the published rows (still inside the claiming transaction)."""
        await driver.execute(self._delete_published, seqs)

    async def backlog(self) -> int:
        """Rows waiting to be published (also exported as ``crm_outbox_backlog``)."""
        async with self.database.engine.connect() as conn:
            count = int(
                (await conn.execute(select(func.count()).select_from(self.table))).scalar_one()
            )
        OUTBOX_BACKLOG.labels(self.service).set(count)
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; back off while NATS or the database is unreachable."""
        backoff = self.poll_interval
        idle_rounds = 0
        while not stop.is_set():
            try:
                published = await self.publish_batch()
                backoff = self.poll_interval
                delay = self.busy_interval if published else self.poll_interval
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError, OSError) as exc:
                logger.warning("outbox publish failed, will retry", extra={"error": repr(exc)})
                published = 0
                delay = backoff = min(backoff * 2, 5.0)
            except Exception:
                logger.exception("outbox relay error, will retry")
                published = 0
                delay = backoff = min(backoff * 2, 5.0)
            if published >= self.batch_size:
                continue  # more is waiting: go again at once
            idle_rounds += 1
            if idle_rounds % 25 == 1:
                try:
                    await self.backlog()
                except Exception:  # the next round retries; metrics must never stop the relay
                    logger.debug("backlog metric failed", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
