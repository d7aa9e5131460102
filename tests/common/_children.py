"""Child processes for the crash tests: a relay or a consumer that a test kills with SIGKILL.

``python -m tests.common._children relay <db> <nats> <marker>``: publishes one batch, then
hangs after every PubAck arrived but before the rows are deleted (the test kills it there).
``python -m tests.common._children consumer <db> <nats> <subject> <durable> <marker>``:
handles a message and commits, then hangs before the ack (the test kills it there).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.db import Database
from crm_common.events import Consumer, OutboxRelay, Subscription
from tests.common.plumbing import dead_letter_table, inbox_table, outbox_table, record_effect


def _hang(marker: Path) -> None:
    marker.write_text("reached")
    time.sleep(3600)  # blocks the whole process: the test SIGKILLs it here


async def relay(db_url: str, nats_url: str, marker: Path) -> None:
    """Publish one batch and hang between the PubAcks and the delete."""

    async def hang_instead_of_deleting(*args: Any) -> None:
        _hang(marker)

    OutboxRelay._delete = hang_instead_of_deleting  # type: ignore[method-assign]
    nc = await nats.connect(nats_url)
    database = Database.from_engine(create_async_engine(db_url))
    await OutboxRelay(
        database, outbox_table, nc.jetstream(), service="plumbing", batch_size=10_000
    ).publish_batch()


async def consumer(db_url: str, nats_url: str, subject: str, durable: str, marker: Path) -> None:
    """Handle messages (effects committed) and hang before the first ack."""

    async def ack_then_hang(self: Msg) -> None:
        _hang(marker)

    Msg.ack = ack_then_hang  # type: ignore[method-assign]
    nc = await nats.connect(nats_url)
    database = Database.from_engine(create_async_engine(db_url))
    sub = Subscription(
        subject=subject, durable=durable, handler=record_effect, ack_wait=2.0, backoff=(0.2,)
    )
    await Consumer(sub, database, inbox_table, dead_letter_table, nc.jetstream()).run(
        asyncio.Event()
    )


if __name__ == "__main__":
    role, *argv = sys.argv[1:]
    if role == "relay":
        asyncio.run(relay(argv[0], argv[1], Path(argv[2])))
    else:
        asyncio.run(consumer(argv[0], argv[1], argv[2], argv[3], Path(argv[4])))
