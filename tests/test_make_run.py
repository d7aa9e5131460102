"""``make run`` (``tools/devrun.py``) starts the whole suite and leaves nothing behind.

The run uses the test session's PostgreSQL server (a scratch database of its own, which devrun
migrates from empty) and NATS, a temporary ``CRM_DEV_DIR`` and ports nobody listens on, so it
never clashes with a user's ``make run`` on the same machine.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil  # type: ignore[import-untyped]
import pytest

from crm_common.testing import TestRuntime

ROOT = Path(__file__).resolve().parent.parent
DEVRUN = ROOT / "tools" / "devrun.py"
SERVICES = ["profile", "segment", "recommend", "notify", "loyalty"]

pytestmark = pytest.mark.slow


def bindable(port: int) -> bool:
    """True when nothing holds ``127.0.0.1:port``."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base() -> int:
    """A base whose API ports (base+1..+5) and worker metrics ports (base+1101..+1105) are free."""
    for _ in range(200):
        base = random.randrange(20_000, 50_000, 10)
        ports = [base + i for i in range(1, 6)] + [base + 1100 + i for i in range(1, 6)]
        if all(bindable(p) for p in ports):
            return base
    raise RuntimeError("no free port range found")


@dataclass
class Run:
    """What a devrun under test is told to use."""

    env: dict[str, str]
    dev_dir: Path
    ports: list[int]

    def api_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"


@pytest.fixture
async def devrun_database(crm_runtime: TestRuntime) -> AsyncIterator[str]:
    """An empty database on the session's server, dropped (with any connection left) afterwards."""
    name = f"crm_devrun_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(crm_runtime.admin_url.replace("+asyncpg", "", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{crm_runtime.admin_url.rpartition('/')[0]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def run(devrun_database: str, crm_runtime: TestRuntime, tmp_path: Path) -> Iterator[Run]:
    """Environment for devrun; afterwards kills (by pid) any process of it that survived."""
    base = free_port_base()
    dev_dir = tmp_path / "dev"
    env = {
        **os.environ,
        "DATABASE_URL": devrun_database,
        "NATS_URL": crm_runtime.nats_url,
        "CRM_DEV_DIR": str(dev_dir),
        "CRM_DEV_API_PORT_BASE": str(base),
        "CRM_ADMIN_API_KEY": "dev-admin-key",
    }
    ports = [base + i for i in range(1, 6)] + [base + 1100 + i for i in range(1, 6)]
    yield Run(env, dev_dir, ports)
    for proc in leftovers(dev_dir, ports):
        proc.kill()


def leftovers(dev_dir: Path, ports: list[int]) -> list[psutil.Process]:
    """Processes still running that belong to the run: its ``CRM_DEV_DIR`` or one of its ports."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("CRM_DEV_DIR") == str(dev_dir):
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports:
            if conn.pid is not None:
                found[conn.pid] = psutil.Process(conn.pid)
    found.pop(os.getpid(), None)
    return list(found.values())


def listening(ports: list[int]) -> list[int]:
    """Those of ``ports`` someone accepts connections on."""
    return [
        c.laddr.port
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
    ]


def start(run: Run, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DEVRUN), *args],
        cwd=ROOT,
        env=run.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_announced(output: str, run: Run) -> None:
    """The ready banner: each service's URL and the admin key."""
    for index, service in enumerate(SERVICES):
        url = run.api_url(index)
        assert f"{service:<10} {url}   docs: {url}/docs" in output, output
    assert "admin API key: dev-admin-key" in output, output
    assert "all five services ready" in output, output


def test_exit_when_ready_starts_everything_and_leaves_nothing(run: Run) -> None:
    proc = start(run, "--exit-when-ready", "--ready-timeout", "120")
    try:
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 0, output
    assert_announced(output, run)
    assert "[crm] stopped" in output
    assert (run.dev_dir / "logs" / "profile-app.log").exists()
    assert leftovers(run.dev_dir, run.ports) == []
    assert listening(run.ports) == []


def test_sigterm_stops_the_whole_suite(run: Run) -> None:
    proc = start(run, "--ready-timeout", "120")
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("press Ctrl-C to stop" in line for line in output):
            assert proc.poll() is None, "".join(output)
            try:
                output.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail("devrun never became ready:\n" + "".join(output))
        assert_announced("".join(output), run)
        # Every API answered /readyz; the workers' metrics endpoints follow within moments.
        for _ in range(150):
            if sorted(listening(run.ports)) == sorted(run.ports):
                break
            time.sleep(0.1)
        assert sorted(listening(run.ports)) == sorted(run.ports)

        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()

    assert returncode == 0
    assert listening(run.ports) == []
    assert leftovers(run.dev_dir, run.ports) == []
