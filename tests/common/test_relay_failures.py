"""Consumers and the outbox relay survive real failures: a lost NATS connection, missing tables."""

from __future__ import annotations

import asyncio
import logging
import time

import nats

from crm_common.db import make_metadata
from crm_common.events import (
    Consumer,
    OutboxRelay,
    Subscription,
    make_dead_letter_table,
    make_outbox_table,
)
from tests.common.plumbing import dead_letter_table, inbox_table, record_effect

#: Tables in a schema that does not exist: every statement on them fails in PostgreSQL.
missing = make_metadata("plumbing_missing")
missing_outbox = make_outbox_table(missing)
missing_dead_letter = make_dead_letter_table(missing)


async def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def logged(caplog, message: str) -> bool:
    return any(r.getMessage() == message for r in caplog.records)


async def test_consumer_retries_when_fetch_fails(crm_runtime, plumbing_db, js, token, caplog):
    caplog.set_level(logging.WARNING, logger="crm")
    nc = await nats.connect(crm_runtime.nats_url)
    sub = Subscription(f"crm.plumbing.{token}.happened", f"lost-{token}", record_effect)
    consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, nc.jetstream())
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop, fetch_timeout=0.1))
    try:
        await asyncio.wait_for(consumer.idle.wait(), 20)
        await nc.close()  # every further fetch fails with a connection error
        await wait_for(lambda: logged(caplog, "fetch failed, retrying"))
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    failure = next(r for r in caplog.records if r.getMessage() == "fetch failed, retrying")
    assert failure.levelno == logging.WARNING
    assert failure.durable == sub.durable


async def test_consumer_survives_a_failing_dead_letter_write(plumbing_db, js, token, caplog):
    caplog.set_level(logging.ERROR, logger="crm")
    subject = f"crm.plumbing.{token}.happened"
    sub = Subscription(subject, f"nodl-{token}", record_effect)
    consumer = Consumer(sub, plumbing_db, inbox_table, missing_dead_letter, js)
    await js.publish(subject, b"not a cloudevent")  # dead-lettered, into a table that is missing
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop, fetch_timeout=0.1))
    try:
        await wait_for(lambda: logged(caplog, "message handling failed; it will be redelivered"))
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    failure = next(
        r
        for r in caplog.records
        if r.getMessage() == "message handling failed; it will be redelivered"
    )
    assert failure.exc_info is not None
    assert "plumbing_missing" in str(failure.exc_info[1])


async def test_relay_survives_database_errors(plumbing_db, js, caplog):
    caplog.set_level(logging.DEBUG, logger="crm")
    relay = OutboxRelay(plumbing_db, missing_outbox, js, service="plumbing", poll_interval=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await wait_for(
            lambda: (
                sum(r.getMessage() == "outbox relay error, will retry" for r in caplog.records) >= 2
            )
        )
        await wait_for(lambda: logged(caplog, "backlog metric failed"))
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert relay.published == 0
