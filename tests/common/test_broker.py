"""crm_common.broker: NATS connection, JetStream streams, waiting for streams, draining."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from crm_common.broker import (
    close_nats,
    connect_nats,
    ensure_stream,
    stream_config,
    stream_name,
    wait_for_stream,
)
from crm_common.embedded import EmbeddedNats, free_port
from crm_common.events.envelope import EventType
from crm_common.settings import NatsSettings


class Pinged(BaseModel):
    n: int


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A NATS server of the test's own, to stop and restart."""
    srv = EmbeddedNats(tmp_path / "nats", free_port())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A TCP port that accepts connections but never speaks NATS (no INFO line)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener


def accepted(listener: socket.socket) -> list[socket.socket]:
    out = []
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return out
        out.append(conn)


def peer_closed(conn: socket.socket) -> bool:
    conn.settimeout(2)
    try:
        return conn.recv(1024) == b""
    except ConnectionResetError:
        return True
    finally:
        conn.close()


@pytest.fixture
async def service(nats_client: NATS) -> AsyncIterator[str]:
    """A producing service name of the test's own; its stream is deleted afterwards."""
    name = f"brk{uuid.uuid4().hex[:8]}"
    yield name
    try:
        await nats_client.jetstream().delete_stream(stream_name(name))
    except NotFoundError:
        pass


def nats_settings(url: str, **overrides: object) -> NatsSettings:
    return NatsSettings(service_name="brokertest", nats_url=url, **overrides)  # type: ignore[arg-type]


class TestStreamName:
    @pytest.mark.parametrize(
        ("service", "name"), [("profile", "CRM_PROFILE"), ("loyalty", "CRM_LOYALTY")]
    )
    def test_upper_case(self, service: str, name: str) -> None:
        assert stream_name(service) == name


class TestStreamConfig:
    def test_from_settings(self) -> None:
        config = stream_config(
            "loyalty",
            NatsSettings(stream_replicas=3, stream_max_age_days=2, duplicate_window_seconds=90),
        )
        assert config.name == "CRM_LOYALTY"
        assert config.subjects == ["crm.loyalty.>"]
        assert config.retention == RetentionPolicy.LIMITS
        assert config.storage == StorageType.FILE
        assert config.discard == DiscardPolicy.OLD
        assert config.max_age == 2 * 86_400
        assert config.duplicate_window == 90
        assert config.num_replicas == 3


class TestConnectNats:
    async def test_connects_named(self, server: EmbeddedNats) -> None:
        nc = await connect_nats(nats_settings(server.url))
        try:
            assert nc.is_connected
            assert nc.options["name"] == "brokertest"
        finally:
            await nc.close()
        named = await connect_nats(nats_settings(server.url), name="brokertest-api")
        try:
            assert named.options["name"] == "brokertest-api"
        finally:
            await named.close()

    @pytest.mark.slow
    async def test_reconnects_without_limit(self, server: EmbeddedNats) -> None:
        """The first connection's retry limit is lifted: an outage of many attempts is survived."""
        nc = await connect_nats(nats_settings(server.url))
        try:
            sub = await nc.subscribe("crm.test.outage")
            server.stop()
            await asyncio.sleep(2.5)  # ~3 reconnect attempts, one second apart
            assert not nc.is_closed
            await asyncio.to_thread(server.start)
            for _ in range(250):
                if nc.stats["reconnects"] >= 1 and nc.is_connected:
                    break
                await asyncio.sleep(0.02)
            assert nc.is_connected
            await nc.publish("crm.test.outage", b"after")
            msg = await sub.next_msg(timeout=5)
            assert msg.data == b"after"
        finally:
            await nc.close()

    async def test_gives_up_after_retry_for(self, caplog: pytest.LogCaptureFixture) -> None:
        port = free_port()
        settings = nats_settings(f"nats://crm:s3cret@127.0.0.1:{port}")
        start = time.monotonic()
        with pytest.raises(nats.errors.NoServersError):
            await connect_nats(settings, retry_for=1.2)
        elapsed = time.monotonic() - start
        assert 1.2 <= elapsed < 6
        warnings = [r for r in caplog.records if r.message == "NATS not reachable yet, retrying"]
        assert len(warnings) >= 1
        assert {r.nats_url_host for r in warnings} == {f"127.0.0.1:{port}"}  # type: ignore[attr-defined]
        assert "s3cret" not in caplog.text

    async def test_connects_once_the_server_is_up(self, tmp_path: Path) -> None:
        port = free_port()
        connecting = asyncio.create_task(
            connect_nats(nats_settings(f"nats://127.0.0.1:{port}"), retry_for=20)
        )
        await asyncio.sleep(0.3)
        assert not connecting.done()
        late = EmbeddedNats(tmp_path / "late", port)
        await asyncio.to_thread(late.start)
        try:
            nc = await asyncio.wait_for(connecting, timeout=10)
            assert nc.is_connected
            await nc.close()
        finally:
            late.stop()

    async def test_cancelled_mid_handshake_closes_the_socket(
        self, silent_server: socket.socket
    ) -> None:
        port = silent_server.getsockname()[1]
        connecting = asyncio.create_task(
            connect_nats(nats_settings(f"nats://127.0.0.1:{port}"), retry_for=30)
        )
        (conn,) = await self._wait_accepted(silent_server)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        assert await asyncio.to_thread(peer_closed, conn)
        gc.collect()  # an unclosed transport would now raise ResourceWarning

    async def _wait_accepted(self, listener: socket.socket) -> list[socket.socket]:
        for _ in range(250):
            conns = accepted(listener)
            if conns:
                return conns
            await asyncio.sleep(0.02)
        raise AssertionError("the client never connected")


class TestEnsureStream:
    async def test_creates_then_updates(
        self, nats_client: NATS, service: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="crm.broker")
        js = nats_client.jetstream()
        await ensure_stream(js, service, NatsSettings(duplicate_window_seconds=120))
        info = await js.stream_info(stream_name(service))
        assert info.config.subjects == [f"crm.{service}.>"]
        assert info.config.duplicate_window == 120
        assert info.config.max_age == 7 * 86_400
        assert [r.stream for r in caplog.records if r.message == "stream created"] == [  # type: ignore[attr-defined]
            stream_name(service)
        ]

        caplog.clear()
        await ensure_stream(
            js, service, NatsSettings(duplicate_window_seconds=30, stream_max_age_days=3)
        )
        info = await js.stream_info(stream_name(service))
        assert info.config.duplicate_window == 30
        assert info.config.max_age == 3 * 86_400
        assert "stream created" not in caplog.messages

    async def test_stream_deduplicates_by_event_id(self, nats_client: NATS, service: str) -> None:
        js = nats_client.jetstream()
        await ensure_stream(js, service, NatsSettings())
        event = EventType(f"crm.{service}.ping.sent", Pinged)
        env = event.envelope(Pinged(n=1), subject_id="p-1")
        first = await js.publish(env.subject, env.body(), headers=env.headers())
        again = await js.publish(env.subject, env.body(), headers=env.headers())
        assert (first.duplicate, again.duplicate) == (None, True)
        assert again.seq == first.seq
        info = await js.stream_info(stream_name(service))
        assert info.state.messages == 1


class TestWaitForStream:
    async def test_existing_stream(self, nats_client: NATS, service: str) -> None:
        js = nats_client.jetstream()
        await ensure_stream(js, service, NatsSettings())
        assert await wait_for_stream(js, stream_name(service), asyncio.Event()) is True

    async def test_stopped_before_start(self, nats_client: NATS) -> None:
        stop = asyncio.Event()
        stop.set()
        assert await wait_for_stream(nats_client.jetstream(), "CRM_NOPE", stop) is False

    async def test_stopped_while_waiting(
        self, nats_client: NATS, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="crm.broker")
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.25, stop.set)
        start = time.monotonic()
        result = await wait_for_stream(
            nats_client.jetstream(), "CRM_NEVER_CREATED", stop, interval=0.05
        )
        assert result is False
        assert time.monotonic() - start < 2
        waiting = [r for r in caplog.records if r.message == "waiting for stream"]
        assert [r.stream for r in waiting] == ["CRM_NEVER_CREATED"]  # type: ignore[attr-defined]

    async def test_stopped_during_a_long_interval(self, nats_client: NATS) -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stop.set)
        start = time.monotonic()
        assert (
            await wait_for_stream(nats_client.jetstream(), "CRM_NONE", stop, interval=30) is False
        )
        assert time.monotonic() - start < 5

    async def test_stream_created_while_waiting(self, nats_client: NATS, service: str) -> None:
        js = nats_client.jetstream()
        stop = asyncio.Event()
        waiting = asyncio.create_task(
            wait_for_stream(js, stream_name(service), stop, interval=0.05)
        )
        await asyncio.sleep(0.15)
        assert not waiting.done()
        await ensure_stream(js, service, NatsSettings())
        assert await asyncio.wait_for(waiting, timeout=5) is True


class TestCloseNats:
    async def test_already_closed(self, server: EmbeddedNats) -> None:
        nc = await nats.connect(server.url)
        await nc.close()
        await close_nats(nc)
        assert nc.is_closed

    async def test_drains_pending_work(self, server: EmbeddedNats) -> None:
        nc = await nats.connect(server.url)
        handled: list[bytes] = []

        async def slow_handler(msg: Msg) -> None:
            await asyncio.sleep(0.05)
            handled.append(msg.data)

        await nc.subscribe("crm.test.drain", cb=slow_handler)
        for i in range(3):
            await nc.publish("crm.test.drain", str(i).encode())
        await nc.flush()
        await close_nats(nc)
        assert nc.is_closed
        assert handled == [b"0", b"1", b"2"]

    async def test_while_reconnecting(self, server: EmbeddedNats) -> None:
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        server.stop()
        for _ in range(250):
            if nc.is_reconnecting:
                break
            await asyncio.sleep(0.02)
        assert nc.is_reconnecting
        await close_nats(nc)
        assert nc.is_closed
