"""Inbox consumers: one effect per event under redelivery, crashes, poison and slow handlers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_common.events import Consumer, Envelope, PoisonMessage, Subscription, by_subject
from crm_common.metrics import CONSUMER_REDELIVERIES
from tests.common.plumbing import (
    dead_letter_table,
    effect_count,
    inbox_table,
    record_effect,
    sample_event,
)

ROOT = Path(__file__).resolve().parents[2]


async def publish(js, envelope: Envelope, *, msg_id: str | None = None) -> None:
    headers = envelope.headers()
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    await js.publish(envelope.subject, envelope.body(), headers=headers)


async def dead_letters(db, durable: str) -> list[dict]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(dead_letter_table)
            .where(dead_letter_table.c.consumer == durable)
            .order_by(dead_letter_table.c.id)
        )
        return [dict(r) for r in rows.mappings()]


async def inbox_count(db, durable: str) -> int:
    async with db.engine.connect() as conn:
        stmt = (
            select(func.count()).select_from(inbox_table).where(inbox_table.c.consumer == durable)
        )
        return int((await conn.execute(stmt)).scalar_one())


async def run_until(consumer: Consumer, condition, timeout: float = 20.0) -> None:
    """Run ``consumer`` until ``condition()`` is true, then stop it gracefully."""
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop, fetch_timeout=0.2))
    deadline = time.monotonic() + timeout
    try:
        while not await condition():
            assert not task.done(), task.exception() if task.done() else None
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def subscription(token: str, handler=record_effect, **kw) -> Subscription:
    return Subscription(
        subject=f"crm.plumbing.{token}.happened", durable=f"test-{token}", handler=handler, **kw
    )


class TestExactlyOnce:
    async def test_each_event_has_one_effect_even_when_delivered_again(
        self, plumbing_db, js, token
    ):
        sub = subscription(token)
        events = [sample_event(sub.subject, str(i)) for i in range(5)]
        for e in events:
            await publish(js, e)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 5))
        # The same event again under a new message id (a producer retry past the dedupe window).
        await publish(js, events[0], msg_id=str(uuid.uuid4()))
        before = await effect_count(plumbing_db)
        outcomes = spy_on(consumer)
        await run_until(consumer, lambda: done(outcomes))
        assert outcomes == ["duplicate"]
        assert await effect_count(plumbing_db, events[0].id) == 1
        assert await effect_count(plumbing_db) == before
        assert await inbox_count(plumbing_db, sub.durable) == 5

    @pytest.mark.slow
    async def test_consumer_killed_after_commit_before_ack_has_no_second_effect(
        self, plumbing_db, js, token, crm_runtime, tmp_path
    ):
        sub = subscription(token, ack_wait=2.0, backoff=(0.2,))
        event = sample_event(sub.subject, "once")
        await publish(js, event)
        marker = tmp_path / "committed"
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.common._children",
                "consumer",
                crm_runtime.database_url,
                crm_runtime.nats_url,
                sub.subject,
                sub.durable,
                str(marker),
            ],
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert child.poll() is None, "consumer child exited early"
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)  # the effect is committed, the ack never sent
        finally:
            child.wait(10)
        assert await effect_count(plumbing_db, event.id) == 1
        redeliveries = CONSUMER_REDELIVERIES.labels(sub.durable)._value.get()
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        outcomes = spy_on(consumer)
        await run_until(consumer, lambda: done(outcomes), timeout=30)
        assert outcomes == ["duplicate"]
        assert CONSUMER_REDELIVERIES.labels(sub.durable)._value.get() == redeliveries + 1
        assert await effect_count(plumbing_db, event.id) == 1


class TestPoison:
    async def test_poison_messages_are_dead_lettered_and_do_not_block_the_rest(
        self, plumbing_db, js, token
    ):
        async def handler(session, envelope):
            if envelope.data.get("note") == "poison":
                raise PoisonMessage("cannot ever be handled")
            await record_effect(session, envelope)

        sub = subscription(token, handler=handler)
        good = [sample_event(sub.subject, f"g{i}") for i in range(3)]
        await publish(js, good[0])
        await js.publish(sub.subject, b"not an event", headers={"Nats-Msg-Id": str(uuid.uuid4())})
        await publish(js, good[1])
        poison = sample_event(sub.subject, "poison")
        await publish(js, poison)
        await publish(js, good[2])
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        await run_until(consumer, lambda: letters_at_least(plumbing_db, sub.durable, 2))
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 3))
        assert all([await effect_count(plumbing_db, e.id) == 1 for e in good])
        letters = await dead_letters(plumbing_db, sub.durable)
        assert [d["error"].split(":")[0] for d in letters] == ["bad envelope", "PoisonMessage"]
        assert letters[0]["body"] == b"not an event"
        assert letters[1]["event_id"] == str(poison.id)
        assert await effect_count(plumbing_db, poison.id) == 0
        # Terminated: they are not delivered again.
        await asyncio.sleep(0.5)
        await run_until(consumer, lambda: consumer_idle(consumer))
        assert len(await dead_letters(plumbing_db, sub.durable)) == 2

    async def test_payload_validation_error_is_poison(self, plumbing_db, js, token):
        from pydantic import BaseModel

        class Narrow(BaseModel):
            amount: int

        async def handler(session, envelope):
            Narrow.model_validate(envelope.data)

        sub = subscription(token, handler=handler)
        await publish(js, sample_event(sub.subject, "no amount"))
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        await run_until(consumer, lambda: letters_at_least(plumbing_db, sub.durable, 1))
        assert (await dead_letters(plumbing_db, sub.durable))[0]["error"].startswith(
            "ValidationError"
        )
        assert (
            await inbox_count(plumbing_db, sub.durable) == 0
        )  # the failed attempt left no inbox row


class TestRetry:
    async def test_transient_failure_is_retried_with_backoff_then_succeeds(
        self, plumbing_db, js, token
    ):
        attempts: list[float] = []

        async def flaky(session, envelope):
            attempts.append(time.monotonic())
            if len(attempts) < 3:
                raise ConnectionError("downstream hiccup")
            await record_effect(session, envelope)

        sub = subscription(token, handler=flaky, backoff=(0.3, 0.6))
        event = sample_event(sub.subject)
        await publish(js, event)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 1))
        assert len(attempts) == 3
        assert attempts[1] - attempts[0] >= 0.25 and attempts[2] - attempts[1] >= 0.55
        assert await effect_count(plumbing_db, event.id) == 1

    async def test_exhausted_deliveries_end_in_the_dead_letter_table(self, plumbing_db, js, token):
        async def always_fails(session, envelope):
            raise ConnectionError("still down")

        sub = subscription(token, handler=always_fails, max_deliver=3, backoff=(0.05,))
        event = sample_event(sub.subject)
        await publish(js, event)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        await run_until(consumer, lambda: letters_at_least(plumbing_db, sub.durable, 1))
        letter = (await dead_letters(plumbing_db, sub.durable))[0]
        assert letter["deliveries"] == 3 and "gave up after 3 deliveries" in letter["error"]

    async def test_no_backoff_configured_retries_after_a_second(self, token):
        assert subscription(token, backoff=()).delay(1) == 1.0
        assert subscription(token, backoff=(2.0, 4.0)).delay(5) == 4.0


class TestLongWork:
    async def test_slow_handler_keeps_its_message_with_in_progress(self, plumbing_db, js, token):
        calls: list[int] = []

        async def slow(session, envelope):
            calls.append(1)
            await asyncio.sleep(2.5)  # well past ack_wait
            await record_effect(session, envelope)

        sub = subscription(token, handler=slow, ack_wait=1.0)
        event = sample_event(sub.subject)
        await publish(js, event)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 1))
        await asyncio.sleep(1.5)
        await run_until(consumer, lambda: consumer_idle(consumer))
        assert calls == [1]  # never redelivered while it was being worked on


class TestDrain:
    async def test_stop_finishes_the_message_in_hand_and_acks_it(self, plumbing_db, js, token):
        started = asyncio.Event()

        async def slowish(session, envelope):
            started.set()
            await asyncio.sleep(0.5)
            await record_effect(session, envelope)

        sub = subscription(token, handler=slowish, ack_wait=5.0)
        event = sample_event(sub.subject)
        await publish(js, event)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop, fetch_timeout=0.2))
        await asyncio.wait_for(started.wait(), 10)
        stop.set()  # as SIGTERM does
        await asyncio.wait_for(task, 10)
        assert await effect_count(plumbing_db, event.id) == 1
        info = await js.consumer_info("CRM_PLUMBING", sub.durable)
        assert info.num_ack_pending == 0 and info.num_redelivered == 0

    async def test_run_returns_when_stopped_before_the_stream_exists(
        self, plumbing_db, nats_client
    ):
        sub = Subscription(
            subject="crm.nosuchservice.thing.happened",
            durable="test-nostream",
            handler=record_effect,
        )
        stop = asyncio.Event()
        stop.set()
        await Consumer(
            sub, plumbing_db, inbox_table, dead_letter_table, nats_client.jetstream()
        ).run(stop)

    def test_durable_names_may_not_contain_dots(self):
        with pytest.raises(ValueError, match="no dots"):
            Subscription(subject="crm.a.b.changed", durable="a.b", handler=record_effect)


def spy_on(consumer: Consumer) -> list[str]:
    """Record the outcome of every message ``consumer`` handles from now on."""
    outcomes: list[str] = []
    original = consumer.handle

    async def spy(msg):
        outcomes.append(await original(msg))
        return outcomes[-1]

    consumer.handle = spy  # type: ignore[method-assign]
    return outcomes


async def inbox_has(db, durable: str, n: int) -> bool:
    return await inbox_count(db, durable) >= n


async def letters_at_least(db, durable: str, n: int) -> bool:
    return len(await dead_letters(db, durable)) >= n


async def consumer_idle(consumer: Consumer) -> bool:
    return consumer.idle.is_set()


async def done(outcomes: list[str]) -> bool:
    return bool(outcomes)


class TestBatchTransaction:
    """``batch_transaction``: one commit per fetched batch, one savepoint per message."""

    async def test_a_batch_commits_once_and_every_event_has_one_effect(
        self, plumbing_db, js, token
    ):
        commits: list[int] = []
        sub = subscription(token, batch_transaction=True, batch=50)
        events = [sample_event(sub.subject, str(i)) for i in range(20)]
        for e in events:
            await publish(js, e)
        # the same event twice in one batch (a producer retry under a new message id)
        await publish(js, events[3], msg_id=str(uuid.uuid4()))
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        outcomes = spy_on_batches(consumer, commits)
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 20))
        assert sorted(outcomes) == ["duplicate"] + ["handled"] * 20
        assert len(commits) < 21  # fewer transactions than messages
        assert all([await effect_count(plumbing_db, e.id) == 1 for e in events])

    async def test_one_bad_message_does_not_undo_the_others(self, plumbing_db, js, token):
        attempts: dict[str, int] = {}

        async def handler(session, envelope):
            note = envelope.data.get("note")
            attempts[note] = attempts.get(note, 0) + 1
            await record_effect(session, envelope)  # written, then rolled back for the bad ones
            if note == "poison":
                raise PoisonMessage("never")
            if note == "flaky" and attempts[note] < 2:
                raise ConnectionError("hiccup")

        sub = subscription(token, handler=handler, batch_transaction=True, backoff=(0.1,))
        good = [sample_event(sub.subject, f"g{i}") for i in range(4)]
        poison, flaky = sample_event(sub.subject, "poison"), sample_event(sub.subject, "flaky")
        for e in [good[0], poison, good[1], flaky, good[2]]:
            await publish(js, e)
        await js.publish(sub.subject, b"not an event", headers={"Nats-Msg-Id": str(uuid.uuid4())})
        await publish(js, good[3])
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        outcomes = spy_on_batches(consumer, [])
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 5))

        assert all([await effect_count(plumbing_db, e.id) == 1 for e in [*good, flaky]])
        assert await effect_count(plumbing_db, poison.id) == 0
        letters = await dead_letters(plumbing_db, sub.durable)
        assert sorted(d["error"].split(":")[0] for d in letters) == [
            "PoisonMessage",
            "bad envelope",
        ]
        assert attempts["flaky"] == 2
        assert outcomes.count("retry") == 1 and outcomes.count("dead") == 2

    async def test_exhausted_deliveries_in_a_batch_end_in_the_dead_letter_table(
        self, plumbing_db, js, token
    ):
        async def handler(session, envelope):
            if envelope.data.get("note") == "down":
                raise ConnectionError("still down")
            await record_effect(session, envelope)

        sub = subscription(
            token, handler=handler, batch_transaction=True, max_deliver=2, backoff=(0.05,)
        )
        ok, down = sample_event(sub.subject, "ok"), sample_event(sub.subject, "down")
        await publish(js, ok)
        await publish(js, down)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        await run_until(consumer, lambda: letters_at_least(plumbing_db, sub.durable, 1))
        letter = (await dead_letters(plumbing_db, sub.durable))[0]
        assert letter["event_id"] == str(down.id) and "gave up after 2" in letter["error"]
        assert await effect_count(plumbing_db, ok.id) == 1

    async def test_a_failed_commit_falls_back_to_one_message_at_a_time(
        self, plumbing_db, js, token, monkeypatch
    ):
        sub = subscription(token, batch_transaction=True)
        events = [sample_event(sub.subject, str(i)) for i in range(3)]
        for e in events:
            await publish(js, e)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        psub = await js.pull_subscribe(
            sub.subject, durable=sub.durable, stream=sub.stream, config=sub.config()
        )
        msgs = await psub.fetch(3, timeout=5)
        assert len(msgs) == 3
        original = plumbing_db.unit_of_work
        calls = 0

        def failing_first(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError("connection lost before the batch began")
            return original(*args, **kwargs)

        monkeypatch.setattr(plumbing_db, "unit_of_work", failing_first)
        assert await consumer.handle_batch(msgs) == ["handled"] * 3
        assert calls == 4  # the batch's transaction, then one per message
        assert all([await effect_count(plumbing_db, e.id) == 1 for e in events])
        await psub.unsubscribe()

    async def test_an_unexpected_batch_error_leaves_the_messages_for_redelivery(
        self, plumbing_db, js, token, monkeypatch
    ):
        sub = subscription(token, batch_transaction=True, ack_wait=1.0)
        events = [sample_event(sub.subject, str(i)) for i in range(2)]
        for e in events:
            await publish(js, e)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        original = consumer.handle_batch
        calls = 0

        async def broken_once(msgs):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("bug in the batch path")
            return await original(msgs)

        monkeypatch.setattr(consumer, "handle_batch", broken_once)
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 2))
        assert calls >= 2
        assert all([await effect_count(plumbing_db, e.id) == 1 for e in events])

    async def test_a_slow_batch_keeps_its_messages_with_in_progress(self, plumbing_db, js, token):
        async def slow(session, envelope):
            await asyncio.sleep(0.8)
            await record_effect(session, envelope)

        sub = subscription(token, handler=slow, batch_transaction=True, ack_wait=1.0)
        events = [sample_event(sub.subject, str(i)) for i in range(2)]
        for e in events:
            await publish(js, e)
        consumer = Consumer(sub, plumbing_db, inbox_table, dead_letter_table, js)
        outcomes = spy_on_batches(consumer, [])
        await run_until(consumer, lambda: inbox_has(plumbing_db, sub.durable, 2))
        await asyncio.sleep(1.2)  # past ack_wait: nothing may come back
        await run_until(consumer, lambda: consumer_idle(consumer))
        assert outcomes.count("handled") == 2 and "duplicate" not in outcomes


def spy_on_batches(consumer: Consumer, commits: list[int]) -> list[str]:
    """Record every outcome of ``consumer`` (single or batch path) and each batch's size."""
    outcomes: list[str] = []
    single, batch = consumer.handle, consumer.handle_batch
    in_batch = False

    async def spy_single(msg):
        outcome = await single(msg)
        if not in_batch:  # a batch's fallback to single messages is reported by the batch
            outcomes.append(outcome)
        return outcome

    async def spy_batch(msgs):
        nonlocal in_batch
        commits.append(len(msgs))
        in_batch = True
        try:
            result = await batch(msgs)
        finally:
            in_batch = False
        outcomes.extend(result)
        return result

    consumer.handle = spy_single  # type: ignore[method-assign]
    consumer.handle_batch = spy_batch  # type: ignore[method-assign]
    return outcomes


class TestBySubject:
    async def test_each_subject_reaches_its_handler_and_others_are_skipped(self, token):
        seen: list[tuple[str, str]] = []

        def recorder(name):
            async def handler(session, envelope):
                seen.append((name, envelope.subject))

            return handler

        placed, cancelled = f"crm.plumbing.{token}.placed", f"crm.plumbing.{token}.cancelled"
        handler = by_subject({placed: recorder("placed"), cancelled: recorder("cancelled")})
        for subject in (placed, f"crm.plumbing.{token}.audited", cancelled):
            await handler(None, sample_event(subject))
        assert seen == [("placed", placed), ("cancelled", cancelled)]
