"""Inbox consumers: durable JetStream pull consumers whose effects happen exactly once.

For each message, one transaction records ``(consumer, event_id)`` in the service's ``inbox``
table and applies the handler's effects; the message is acked only after that commit. A
redelivery (the process died after commit but before ack, or the ack was lost) finds the inbox
row and is acked without a second effect. Transient failures are ``nak``-ed with a growing
delay; malformed or unprocessable messages (and those that exhausted their deliveries) are
written to the ``dead_letter`` table and ``term``-inated so they never block the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    func,
    insert,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.broker import stream_name, wait_for_stream
from crm_common.db import Database
from crm_common.events.envelope import Envelope, EnvelopeError
from crm_common.metrics import CONSUMER_MESSAGES, CONSUMER_PENDING, CONSUMER_REDELIVERIES
from crm_common.telemetry import consumer_span

__all__ = [
    "Consumer",
    "Handler",
    "PoisonMessage",
    "Subscription",
    "make_dead_letter_table",
    "make_inbox_table",
]

logger = logging.getLogger("crm.inbox")
Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never succeed: dead-lettered, not retried."""


def make_inbox_table(metadata: MetaData) -> Table:
    """``inbox``: one row per handled event per consumer (the idempotency record)."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("subject", Text, nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "event_id"),
    )


def make_dead_letter_table(metadata: MetaData) -> Table:
    """``dead_letter``: poison messages kept whole for inspection and replay."""
    return Table(
        "dead_letter",
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("consumer", Text, nullable=False),
        Column("subject", Text, nullable=False),
        Column("event_id", Text, nullable=True),
        Column("headers", JSONB, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("error", Text, nullable=False),
        Column("deliveries", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


@dataclass(frozen=True)
class Subscription:
    """One durable consumer: which subject it reads, under what name, and what it does."""

    subject: str
    durable: str
    handler: Handler
    ack_wait: float = 30.0
    max_deliver: int = 8
    backoff: Sequence[float] = field(default=(1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0))
    max_ack_pending: int = 1000
    batch: int = 100

    def __post_init__(self) -> None:
        """Durable names may not contain dots (they are NATS subject tokens)."""
        if "." in self.durable or not self.durable:
            raise ValueError(f"durable name {self.durable!r} must be non-empty and contain no dots")

    @property
    def stream(self) -> str:
        """The producer's stream, from the subject's service token."""
        return stream_name(self.subject.split(".")[1])

    def config(self) -> ConsumerConfig:
        """Explicit-ack pull consumer config, with every knob set on purpose."""
        return ConsumerConfig(
            durable_name=self.durable,
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
        )

    def delay(self, deliveries: int) -> float:
        """``nak`` delay after the ``deliveries``-th failed attempt."""
        return self.backoff[min(deliveries, len(self.backoff)) - 1] if self.backoff else 1.0


class Consumer:
    """Runs one :class:`Subscription` against a service's database, inbox and dead-letter tables."""

    def __init__(
        self,
        subscription: Subscription,
        database: Database,
        inbox: Table,
        dead_letter: Table,
        js: JetStreamContext,
    ) -> None:
        """Bind the subscription to its tables and JetStream."""
        self.sub = subscription
        self.database = database
        self.inbox = inbox
        self.dead_letter = dead_letter
        self.js = js
        self.idle = asyncio.Event()

    async def handle(self, msg: Msg) -> str:
        """Process one message; returns the outcome (``handled``, ``duplicate``, ``retry``, ``dead``)."""
        deliveries = msg.metadata.num_delivered if msg.reply else 1
        if deliveries > 1:
            CONSUMER_REDELIVERIES.labels(self.sub.durable).inc()
        try:
            envelope = Envelope.from_message(msg.subject, msg.headers, msg.data)
        except EnvelopeError as exc:
            return await self._dead(msg, None, f"bad envelope: {exc}", deliveries)
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        try:
            with consumer_span(msg.subject, self.sub.durable, msg.headers or {}):
                outcome = await self._apply(envelope)
        except (PoisonMessage, ValidationError) as exc:
            return await self._dead(msg, envelope, f"{type(exc).__name__}: {exc}", deliveries)
        except Exception as exc:
            if deliveries >= self.sub.max_deliver:
                return await self._dead(
                    msg, envelope, f"gave up after {deliveries} deliveries: {exc!r}", deliveries
                )
            logger.warning(
                "handler failed, will retry",
                extra={
                    "durable": self.sub.durable,
                    "event_id": str(envelope.id),
                    "error": repr(exc),
                    "deliveries": deliveries,
                },
            )
            await msg.nak(delay=self.sub.delay(deliveries))
            CONSUMER_MESSAGES.labels(self.sub.durable, "retry").inc()
            return "retry"
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await msg.ack()
        CONSUMER_MESSAGES.labels(self.sub.durable, outcome).inc()
        return outcome

    async def _apply(self, envelope: Envelope) -> str:
        """Inbox row and effects in one transaction; ``duplicate`` when already handled."""
        async with self.database.unit_of_work() as session:
            claimed = await session.execute(
                pg_insert(self.inbox)
                .values(consumer=self.sub.durable, event_id=envelope.id, subject=envelope.subject)
                .on_conflict_do_nothing()
                .returning(self.inbox.c.event_id)
            )
            if claimed.first() is None:
                return "duplicate"
            await self.sub.handler(session, envelope)
        return "handled"

    async def _heartbeat(self, msg: Msg) -> None:
        """Tell JetStream a long handler is still working, so the message is not redelivered."""
        while True:
            await asyncio.sleep(max(self.sub.ack_wait / 3, 0.5))
            await msg.in_progress()

    async def _dead(self, msg: Msg, envelope: Envelope | None, error: str, deliveries: int) -> str:
        """Record a poison message and terminate it (no further deliveries)."""
        logger.error(
            "message dead-lettered",
            extra={
                "durable": self.sub.durable,
                "subject": msg.subject,
                "event_id": str(envelope.id) if envelope else None,
                "error": error[:500],
            },
        )
        async with self.database.unit_of_work() as session:
            await session.execute(
                insert(self.dead_letter).values(
                    consumer=self.sub.durable,
                    subject=msg.subject,
                    event_id=str(envelope.id) if envelope else (msg.headers or {}).get("ce-id"),
                    headers=dict(msg.headers or {}),
                    body=msg.data,
                    error=error,
                    deliveries=deliveries,
                )
            )
        await msg.term()
        CONSUMER_MESSAGES.labels(self.sub.durable, "dead").inc()
        return "dead"

    async def run(self, stop: asyncio.Event, *, fetch_timeout: float = 1.0) -> None:
        """Fetch and handle until ``stop`` is set; finishes the batch in hand, then returns."""
        self.idle.clear()
        if not await wait_for_stream(self.js, self.sub.stream, stop):
            return
        psub = await self.js.pull_subscribe(
            self.sub.subject,
            durable=self.sub.durable,
            stream=self.sub.stream,
            config=self.sub.config(),
        )
        rounds = 0
        try:
            while not stop.is_set():
                try:
                    msgs = await psub.fetch(self.sub.batch, timeout=fetch_timeout)
                except (TimeoutError, nats.errors.TimeoutError):
                    self.idle.set()
                    msgs = []
                except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
                    logger.warning(
                        "fetch failed, retrying",
                        extra={"durable": self.sub.durable, "error": repr(exc)},
                    )
                    await asyncio.sleep(0.5)
                    continue
                if msgs:
                    self.idle.clear()
                for msg in msgs:
                    await self._handle_safely(msg)
                rounds += 1
                if rounds % 30 == 1:
                    await self._report_lag(psub)
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _handle_safely(self, msg: Msg) -> None:
        """A handler or database failure never takes the worker down: the message is redelivered."""
        try:
            await self.handle(msg)
        except Exception:
            logger.exception(
                "message handling failed; it will be redelivered",
                extra={"durable": self.sub.durable},
            )

    async def _report_lag(self, psub: JetStreamContext.PullSubscription) -> None:
        """Export pending + unacked messages as ``crm_consumer_pending``."""
        with contextlib.suppress(Exception):
            info = await psub.consumer_info()
            CONSUMER_PENDING.labels(self.sub.durable).set(
                (info.num_pending or 0) + (info.num_ack_pending or 0)
            )
