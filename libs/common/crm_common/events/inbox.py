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
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    "by_subject",
    "PoisonMessage",
    "Subscription",
    "make_dead_letter_table",
    "make_inbox_table",
]

logger = logging.getLogger("crm.inbox")
Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]


def by_subject(handlers: Mapping[str, Handler]) -> Handler:
    """One handler for a wildcard subscription: the handler of the envelope's subject, and a
    subject not in ``handlers`` acked and skipped (a producer may add events nobody reads)."""

    async def dispatch(session: AsyncSession, envelope: Envelope) -> None:
        handler = handlers.get(envelope.subject)
        if handler is not None:
            await handler(session, envelope)

    return dispatch


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
    #: Handle each fetched batch in one transaction (one savepoint per message) instead of
    #: one transaction per message: one commit, and one WAL flush, for up to ``batch``
    #: messages. For high-rate streams whose handlers are short.
    batch_transaction: bool = False

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

    def _deliveries(self, msg: Msg) -> int:
        """How many times ``msg`` was delivered (counted as a redelivery when more than once)."""
        deliveries = msg.metadata.num_delivered if msg.reply else 1
        if deliveries > 1:
            CONSUMER_REDELIVERIES.labels(self.sub.durable).inc()
        return deliveries

    async def handle(self, msg: Msg) -> str:
        """Process one message; returns the outcome (``handled``, ``duplicate``, ``retry``, ``dead``)."""
        deliveries = self._deliveries(msg)
        try:
            envelope = Envelope.from_message(msg.subject, msg.headers, msg.data)
        except EnvelopeError as exc:
            return await self._dead(msg, None, f"bad envelope: {exc}", deliveries)
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        try:
            with consumer_span(msg.subject, self.sub.durable, msg.headers or {}):
                outcome = await self._apply(envelope)
        except Exception as exc:
            return await self._failed(msg, envelope, deliveries, exc)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await msg.ack()
        CONSUMER_MESSAGES.labels(self.sub.durable, outcome).inc()
        return outcome

    async def handle_batch(self, msgs: Sequence[Msg]) -> list[str]:
        """Process fetched messages in one transaction, each in its own savepoint.

        The outcomes come back in the order of ``msgs``. A failing handler rolls back only its
        savepoint; after the commit its message takes the same path as in :meth:`handle` (dead
        letter or ``nak`` with backoff) and every other message is acked. If the commit itself
        fails, nothing was applied and each message is handled again on its own.
        """
        outcomes: dict[int, str] = {}
        parsed: list[tuple[int, Msg, Envelope, int]] = []
        for i, msg in enumerate(msgs):
            deliveries = self._deliveries(msg)
            try:
                envelope = Envelope.from_message(msg.subject, msg.headers, msg.data)
            except EnvelopeError as exc:
                outcomes[i] = await self._dead(msg, None, f"bad envelope: {exc}", deliveries)
                continue
            parsed.append((i, msg, envelope, deliveries))
        applied: list[tuple[int, Msg, str]] = []
        failed: list[tuple[int, Msg, Envelope, int, Exception]] = []
        fallback = False
        heartbeat = asyncio.create_task(self._heartbeat(*(m for _, m, _, _ in parsed)))
        try:
            async with self.database.unit_of_work() as session:
                for i, msg, envelope, deliveries in parsed:
                    try:
                        with consumer_span(msg.subject, self.sub.durable, msg.headers or {}):
                            async with session.begin_nested():
                                outcome = await self._claim_and_apply(session, envelope)
                    except Exception as error:
                        failed.append((i, msg, envelope, deliveries, error))
                    else:
                        applied.append((i, msg, outcome))
        except Exception as exc:
            logger.warning(
                "batch transaction failed; handling its messages one by one",
                extra={"durable": self.sub.durable, "error": repr(exc)},
            )
            fallback = True
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        # nothing was applied when the transaction failed: each message on its own, as
        # without batching
        for i, msg, _, _ in parsed if fallback else ():
            outcomes[i] = await self.handle(msg)
        for i, msg, outcome in applied:
            await msg.ack()
            CONSUMER_MESSAGES.labels(self.sub.durable, outcome).inc()
            outcomes[i] = outcome
        for i, msg, envelope, deliveries, problem in failed:
            outcomes[i] = await self._failed(msg, envelope, deliveries, problem)
        return [outcomes[i] for i in sorted(outcomes)]

    async def _failed(self, msg: Msg, envelope: Envelope, deliveries: int, exc: Exception) -> str:
        """A handler failed: poison is dead-lettered at once, anything else retried until
        ``max_deliver``."""
        if isinstance(exc, (PoisonMessage, ValidationError)):
            return await self._dead(msg, envelope, f"{type(exc).__name__}: {exc}", deliveries)
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

    async def _apply(self, envelope: Envelope) -> str:
        """Inbox row and effects in one transaction; ``duplicate`` when already handled."""
        async with self.database.unit_of_work() as session:
            return await self._claim_and_apply(session, envelope)

    async def _claim_and_apply(self, session: AsyncSession, envelope: Envelope) -> str:
        """Insert the inbox row and run the handler, unless the event was handled already."""
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

    async def _heartbeat(self, *msgs: Msg) -> None:
        """Tell JetStream a long handler is still working, so its messages are not redelivered."""
        while True:
            await asyncio.sleep(max(self.sub.ack_wait / 3, 0.5))
            for msg in msgs:
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
                if self.sub.batch_transaction and len(msgs) > 1:
                    await self._handle_batch_safely(msgs)
                else:
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

    async def _handle_batch_safely(self, msgs: Sequence[Msg]) -> None:
        """:meth:`handle_batch`, never taking the worker down (unacked messages come back)."""
        try:
            await self.handle_batch(msgs)
        except Exception:
            logger.exception(
                "batch handling failed; its messages will be redelivered",
                extra={"durable": self.sub.durable},
            )

    async def _report_lag(self, psub: JetStreamContext.PullSubscription) -> None:
        """Export pending + unacked messages as ``crm_consumer_pending``."""
        with contextlib.suppress(Exception):
            info = await psub.consumer_info()
            CONSUMER_PENDING.labels(self.sub.durable).set(
                (info.num_pending or 0) + (info.num_ack_pending or 0)
            )
