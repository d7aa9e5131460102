"""Transactional outbox: nothing lost, nothing twice, under rollbacks, kills, restarts and replicas."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crm_common.broker import ensure_stream
from crm_common.db import Database, create_engine
from crm_common.embedded import EmbeddedNats, free_port
from crm_common.events import Envelope, Outbox, OutboxRelay, unpack_body
from crm_common.settings import NatsSettings
from tests.common.plumbing import outbox_table, sample_event
from tests.common.test_db import db_settings, terminate

ROOT = Path(__file__).resolve().parents[2]
outbox = Outbox(outbox_table)


async def stream_ids(js, subject: str) -> list[str]:
    """Every ``ce-id`` stored in the stream under ``subject``, in stream order (duplicates kept)."""
    sub = await js.pull_subscribe(
        subject,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0
        ),
    )
    ids: list[str] = []
    while True:
        try:
            msgs = await sub.fetch(1000, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            break
        ids += [m.headers["ce-id"] for m in msgs]
    await sub.unsubscribe()
    return ids


async def pending_rows(db: Database, subject: str) -> int:
    async with db.engine.connect() as conn:
        stmt = (
            select(func.count()).select_from(outbox_table).where(outbox_table.c.subject == subject)
        )
        return int((await conn.execute(stmt)).scalar_one())


async def drain(relay: OutboxRelay, db: Database, subject: str) -> None:
    while await pending_rows(db, subject):
        await relay.publish_batch()


async def run_until_empty(relay: OutboxRelay, db: Database, subject: str) -> None:
    """Run the relay's loop until no row of ``subject`` waits, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await wait_until(lambda: pending_rows(db, subject), 0)
    stop.set()
    await asyncio.wait_for(task, 5)


def relay_on_one_connection(crm_runtime, js) -> tuple[AsyncEngine, OutboxRelay]:
    """A relay whose pool holds a single connection, so a test knows which one it uses."""
    engine = create_engine(db_settings(crm_runtime, db_pool_size=1, db_max_overflow=0))
    relay = OutboxRelay(
        Database.from_engine(engine), outbox_table, js, service="plumbing", poll_interval=0.05
    )
    return engine, relay


class TestEnqueue:
    async def test_rolled_back_event_is_never_published(self, plumbing_db, js, token):
        subject = f"crm.plumbing.{token}.happened"
        kept, dropped = sample_event(subject, "kept"), sample_event(subject, "dropped")
        async with plumbing_db.sessionmaker() as session:
            await outbox.enqueue(session, dropped)
            await session.rollback()
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue(session, kept)
        relay = OutboxRelay(plumbing_db, outbox_table, js, service="plumbing")
        await drain(relay, plumbing_db, subject)
        assert await stream_ids(js, subject) == [str(kept.id)]

    async def test_enqueue_many_publishes_in_order_with_cloudevents_headers(
        self, plumbing_db, js, token
    ):
        subject = f"crm.plumbing.{token}.happened"
        events = [sample_event(subject, str(i)) for i in range(5)]
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue_many(session, events)
            await outbox.enqueue_many(session, [])
        await drain(
            OutboxRelay(plumbing_db, outbox_table, js, service="plumbing"), plumbing_db, subject
        )
        sub = await js.pull_subscribe(subject, config=ConsumerConfig(ack_policy=AckPolicy.NONE))
        msgs = await sub.fetch(5, timeout=2)
        assert [m.headers["ce-id"] for m in msgs] == [str(e.id) for e in events]
        first = msgs[0]
        assert first.headers["Nats-Msg-Id"] == str(events[0].id)
        assert first.headers["ce-type"] == f"{subject}.v1"
        assert first.headers["ce-source"] == "/crm/plumbing"
        assert first.headers["ce-specversion"] == "1.0"
        assert first.data == b'{"note":"0"}'
        await sub.unsubscribe()

    async def test_a_large_payload_is_stored_and_sent_compressed(self, plumbing_db, js, token):
        subject = f"crm.plumbing.{token}.happened"
        large = sample_event(subject, "n" * 200)
        large.data["items"] = [{"sku": f"SKU-{i:05d}", "qty": i % 5} for i in range(2_000)]
        small = sample_event(subject, "small")
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue_many(session, [large, small])
            rows = (
                await session.execute(
                    select(outbox_table.c.payload)
                    .where(outbox_table.c.subject == subject)
                    .order_by(outbox_table.c.seq)
                )
            ).all()
        stored = [r.payload for r in rows]
        assert len(stored[0]) < len(large.body()) // 4 and unpack_body(stored[0]) == large.body()
        assert stored[1] == small.body()
        await drain(
            OutboxRelay(plumbing_db, outbox_table, js, service="plumbing"), plumbing_db, subject
        )
        sub = await js.pull_subscribe(subject, config=ConsumerConfig(ack_policy=AckPolicy.NONE))
        first, second = await sub.fetch(2, timeout=2)
        await sub.unsubscribe()
        assert first.headers["Content-Encoding"] == "zstd" and first.data == stored[0]
        assert "Content-Encoding" not in second.headers and second.data == small.body()
        assert Envelope.from_message(subject, first.headers, first.data).data == large.data

    async def test_enqueue_many_on_the_driver_stores_the_rows_enqueue_many_does(
        self, plumbing_db, token
    ):
        subject = f"crm.plumbing.{token}.happened"
        traced = sample_event(subject, "traced")
        traced.trace_headers = {"traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}
        events = [sample_event(subject, "plain"), traced]
        twins = [replace(e, id=uuid.uuid4()) for e in events]
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue_many(session, events)
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            await outbox.enqueue_many_on(driver, twins)
            await outbox.enqueue_many_on(driver, [])
        t = outbox_table
        columns = [c for c in t.c if c.name not in ("seq", "id", "created_at")]
        async with plumbing_db.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(t.c.id, *columns).where(t.c.subject == subject).order_by(t.c.seq)
                )
            ).all()
            await conn.execute(delete(t).where(t.c.subject == subject))  # the relays' tests count
        assert [r[0] for r in rows] == [e.id for e in [*events, *twins]]
        stored = [tuple(r[1:]) for r in rows]
        assert stored[2:] == stored[:2]
        assert stored[1][-1] == traced.trace_headers
        assert stored[0][-1] == {}

    async def test_enqueue_many_on_the_driver_is_rolled_back_with_the_transaction(
        self, plumbing_db, token
    ):
        subject = f"crm.plumbing.{token}.happened"
        async with plumbing_db.sessionmaker() as session:
            await session.execute(select(1))
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            await outbox.enqueue_many_on(driver, [sample_event(subject)])
            assert (
                await session.scalar(
                    select(func.count())
                    .select_from(outbox_table)
                    .where(outbox_table.c.subject == subject)
                )
                == 1
            )
            await session.rollback()
        assert await pending_rows(plumbing_db, subject) == 0


class TestRelayCrash:
    @pytest.mark.slow
    async def test_relay_killed_between_puback_and_delete_publishes_each_event_once(
        self, plumbing_db, js, token, crm_runtime, tmp_path
    ):
        subject = f"crm.plumbing.{token}.happened"
        events = [sample_event(subject, str(i)) for i in range(50)]
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue_many(session, events)
        marker = tmp_path / "published"
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.common._children",
                "relay",
                crm_runtime.database_url,
                crm_runtime.nats_url,
                str(marker),
            ],
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert child.poll() is None, "relay child exited early"
                assert time.monotonic() < deadline, "relay child never published"
                await asyncio.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)  # every PubAck arrived; the delete never ran
        finally:
            child.wait(10)
        assert await pending_rows(plumbing_db, subject) == 50  # rows survived the crash
        assert sorted(await stream_ids(js, subject)) == sorted(str(e.id) for e in events)

        relay = OutboxRelay(plumbing_db, outbox_table, js, service="plumbing")
        await drain(relay, plumbing_db, subject)
        assert relay.duplicates == 50 and relay.published == 0  # JetStream dropped the re-sends
        assert sorted(await stream_ids(js, subject)) == sorted(str(e.id) for e in events)

    @pytest.mark.slow
    async def test_events_committed_while_nats_is_down_are_published_once_after_restart(
        self, plumbing_db, tmp_path, token
    ):
        server = EmbeddedNats(tmp_path / "js", free_port())
        server.start()
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            js = nc.jetstream()
            await ensure_stream(js, "plumbing", NatsSettings(nats_url=server.url))
            subject = f"crm.plumbing.{token}.happened"
            relay = OutboxRelay(
                plumbing_db,
                outbox_table,
                js,
                service="plumbing",
                poll_interval=0.05,
                ack_timeout=2.0,
            )
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            before = [sample_event(subject, f"a{i}") for i in range(20)]
            async with plumbing_db.unit_of_work() as session:
                await outbox.enqueue_many(session, before)
            await wait_until(lambda: pending_rows(plumbing_db, subject), 0)

            server.stop()
            during = [sample_event(subject, f"b{i}") for i in range(20)]
            async with plumbing_db.unit_of_work() as session:
                await outbox.enqueue_many(session, during)
            await asyncio.sleep(1.0)  # the relay tries and fails while the server is down
            assert await pending_rows(plumbing_db, subject) == 20
            server.start()
            await wait_until(lambda: pending_rows(plumbing_db, subject), 0, timeout=60)
            stop.set()
            await task
            ids = await stream_ids(js, subject)
            assert sorted(ids) == sorted(str(e.id) for e in before + during)
        finally:
            await nc.close()
            server.stop()


class TestRelayConnection:
    async def test_a_terminated_connection_costs_a_retry_not_an_event(
        self, crm_runtime, plumbing_db, js, token
    ):
        """The relay talks to asyncpg directly: a dead connection must still leave the pool."""
        engine, relay = relay_on_one_connection(crm_runtime, js)
        subject = f"crm.plumbing.{token}.happened"
        try:
            first, second = sample_event(subject, "first"), sample_event(subject, "second")
            async with plumbing_db.unit_of_work() as session:
                await outbox.enqueue(session, first)
            await drain(relay, plumbing_db, subject)
            async with engine.connect() as conn:  # the relay's one pooled connection
                pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            await terminate(crm_runtime, pid)
            async with plumbing_db.unit_of_work() as session:
                await outbox.enqueue(session, second)
            await run_until_empty(relay, plumbing_db, subject)
            assert sorted(await stream_ids(js, subject)) == sorted([str(first.id), str(second.id)])
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT pg_backend_pid()")) != pid
        finally:
            await engine.dispose()

    async def test_a_connection_lost_before_the_delete_republishes_once(
        self, crm_runtime, plumbing_db, js, token, monkeypatch
    ):
        """PubAcks in, connection gone before the delete: the rows stay and JetStream dedupes."""
        engine, relay = relay_on_one_connection(crm_runtime, js)
        real_delete = OutboxRelay._delete
        lost: list[int] = []

        async def lose_the_connection_first(self, driver, seqs):
            if not lost:
                lost.append(driver.get_server_pid())
                await terminate(crm_runtime, lost[0])
            await real_delete(self, driver, seqs)

        monkeypatch.setattr(OutboxRelay, "_delete", lose_the_connection_first)
        subject = f"crm.plumbing.{token}.happened"
        events = [sample_event(subject, str(i)) for i in range(3)]
        try:
            async with plumbing_db.unit_of_work() as session:
                await outbox.enqueue_many(session, events)
            await run_until_empty(relay, plumbing_db, subject)
            assert lost and relay.duplicates == 3 and relay.published == 0
            assert sorted(await stream_ids(js, subject)) == sorted(str(e.id) for e in events)
        finally:
            await engine.dispose()


class TestReplicas:
    async def test_two_relays_at_once_publish_each_event_once(self, crm_runtime, js, token):
        subject = f"crm.plumbing.{token}.happened"
        engines = [create_async_engine(crm_runtime.database_url) for _ in range(2)]
        dbs = [Database.from_engine(e) for e in engines]
        try:
            events = [sample_event(subject, str(i)) for i in range(2000)]
            async with dbs[0].unit_of_work() as session:
                await outbox.enqueue_many(session, events)
            relays = [
                OutboxRelay(db, outbox_table, js, service="plumbing", batch_size=50) for db in dbs
            ]

            async def work(relay: OutboxRelay) -> None:
                while await relay.publish_batch():
                    pass

            await asyncio.gather(*(work(r) for r in relays))
            assert await pending_rows(dbs[0], subject) == 0
            assert [r.duplicates for r in relays] == [0, 0]  # no row was ever sent twice
            assert sum(r.published for r in relays) == 2000
            assert all(r.published > 0 for r in relays)  # both shared the work
            ids = await stream_ids(js, subject)
            assert len(ids) == 2000 and set(ids) == {str(e.id) for e in events}
        finally:
            for engine in engines:
                await engine.dispose()


class TestRun:
    async def test_run_publishes_until_stopped_and_reports_backlog(self, plumbing_db, js, token):
        subject = f"crm.plumbing.{token}.happened"
        relay = OutboxRelay(
            plumbing_db, outbox_table, js, service="plumbing", batch_size=10, poll_interval=0.05
        )
        events = [sample_event(subject, str(i)) for i in range(35)]
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue_many(session, events)
        await run_until_empty(relay, plumbing_db, subject)
        assert relay.published == 35
        assert await relay.backlog() == 0

    async def test_run_looks_again_soon_while_it_finds_rows_and_rests_once_empty(
        self, plumbing_db, js, token
    ):
        """A steady trickle is relayed at the busy pace; an empty outbox waits a poll interval."""
        subject = f"crm.plumbing.{token}.happened"
        relay = OutboxRelay(
            plumbing_db, outbox_table, js, service="plumbing", poll_interval=60, busy_interval=0.2
        )
        stop = asyncio.Event()
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue(session, sample_event(subject, "first"))
        task = asyncio.create_task(relay.run(stop))
        for i in range(30):  # every 10 ms: each busy round finds rows, so it never rests
            async with plumbing_db.unit_of_work() as session:
                await outbox.enqueue(session, sample_event(subject, str(i)))
            await asyncio.sleep(0.01)
        # at one round a minute this would take half an hour
        await wait_until(lambda: pending_rows(plumbing_db, subject), 0, timeout=15)
        await asyncio.sleep(1)  # a round found the outbox empty: the relay rests for a minute
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue(session, sample_event(subject, "late"))
        await asyncio.sleep(1)
        assert await pending_rows(plumbing_db, subject) == 1
        stop.set()
        await asyncio.wait_for(task, 5)
        assert relay.published == 31

    def test_busy_pace_is_never_slower_than_the_idle_one(self, plumbing_db, js):
        relay = OutboxRelay(
            plumbing_db, outbox_table, js, service="plumbing", poll_interval=0.1, busy_interval=1
        )
        assert relay.busy_interval == 0.1

    async def test_run_survives_a_publish_error_and_retries(self, plumbing_db, nats_client, token):
        """A subject no stream captures gets no PubAck: the rows stay until a stream exists."""
        js = nats_client.jetstream()
        subject = f"crm.nostream{token}.thing.happened"
        async with plumbing_db.unit_of_work() as session:
            await outbox.enqueue(session, sample_event(subject))
        relay = OutboxRelay(
            plumbing_db, outbox_table, js, service="plumbing", poll_interval=0.05, ack_timeout=1.0
        )
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(0.5)
        assert await pending_rows(plumbing_db, subject) == 1
        await ensure_stream(js, f"nostream{token}", NatsSettings())
        await wait_until(lambda: pending_rows(plumbing_db, subject), 0, timeout=20)
        stop.set()
        await asyncio.wait_for(task, 10)
        await js.delete_stream(f"CRM_NOSTREAM{token.upper()}")


async def wait_until(probe, expected, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := await probe()) != expected:
        assert time.monotonic() < deadline, f"still {value}, wanted {expected}"
        await asyncio.sleep(0.05)
