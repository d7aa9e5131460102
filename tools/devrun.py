"""``make run``: the whole suite on one machine.

Starts an embedded PostgreSQL and NATS (JetStream) unless ``DATABASE_URL`` / ``NATS_URL`` are
set, applies every service's migrations, starts the five APIs (ports 8001-8005) and the five
workers, waits until every ``/readyz`` answers 200, and stops everything cleanly on Ctrl-C or
SIGTERM. Data of the embedded servers stays in ``.dev/`` between runs (``make clean`` removes it).

``CRM_DEV_DIR`` moves ``.dev/`` and ``CRM_DEV_API_PORT_BASE`` (default 8000) moves the ports: the
APIs listen on base+1..base+5 and the workers' metrics on base+1101..base+1105 (0, i.e. off,
when that is past 65535), so a second run, e.g. a test's, does not clash with a user's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg

from crm_common.embedded import EmbeddedNats, EmbeddedPostgres, port_open
from crm_common.migrations import upgrade
from crm_common.settings import normalise_database_url

ROOT = Path(__file__).resolve().parent.parent
DEV = Path(os.environ.get("CRM_DEV_DIR") or ROOT / ".dev").resolve()
API_PORT_BASE = int(os.environ.get("CRM_DEV_API_PORT_BASE", "8000"))
NAMES = ("profile", "segment", "recommend", "notify", "loyalty")
SERVICES = {name: API_PORT_BASE + i for i, name in enumerate(NAMES, start=1)}
#: Worker metrics ports, base+1101.. (9101-9105 by default); 0 turns the endpoint off.
METRICS_PORTS = {
    name: port if (port := API_PORT_BASE + 1100 + i) <= 65535 else 0
    for i, name in enumerate(NAMES, start=1)
}
PG_PORT = int(os.environ.get("CRM_DEV_PG_PORT", "55432"))
NATS_PORT = int(os.environ.get("CRM_DEV_NATS_PORT", "54222"))


def say(message: str) -> None:
    """Progress line on stdout."""
    print(f"[crm] {message}", flush=True)


def shown(path: Path) -> str:
    """``path`` relative to the checkout when it is inside it (``.dev/logs``), else absolute."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the embedded server when it does not exist yet."""
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def wait_ready(port: int, procs: list[subprocess.Popen[bytes]], timeout: float) -> bool:
    """Poll ``/readyz`` until 200; ``False`` on timeout or when a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def stop_all(procs: list[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    """SIGTERM every process, wait, then SIGKILL what is left (uvicorn exits 143: that is fine)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main() -> int:
    """Run until interrupted; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument(
        "--exit-when-ready",
        action="store_true",
        help="stop once every service is ready (smoke test)",
    )
    args = parser.parse_args()

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    postgres: EmbeddedPostgres | None = None
    nats_server: EmbeddedNats | None = None
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    logs = DEV / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        if env.get("DATABASE_URL"):
            database_url = normalise_database_url(env["DATABASE_URL"])
            say("using DATABASE_URL from the environment")
        else:
            postgres = EmbeddedPostgres(DEV / "pg", PG_PORT, log_file=None)
            say(
                f"starting embedded PostgreSQL on 127.0.0.1:{PG_PORT} (data in {shown(DEV / 'pg')})"
            )
            admin = postgres.start(durable=True)
            asyncio.run(ensure_database(admin, "crm"))
            database_url = admin.rsplit("/", 1)[0] + "/crm"
        if env.get("NATS_URL"):
            nats_url = env["NATS_URL"]
            say("using NATS_URL from the environment")
        else:
            nats_server = EmbeddedNats(DEV / "nats", NATS_PORT)
            say(
                f"starting embedded NATS with JetStream on 127.0.0.1:{NATS_PORT} (streams in {shown(DEV / 'nats')})"
            )
            nats_url = nats_server.start()
        env.update(DATABASE_URL=database_url, NATS_URL=nats_url, PYTHONUNBUFFERED="1")
        env.setdefault("CRM_ADMIN_API_KEY", "dev-admin-key")
        busy = [p for p in [*SERVICES.values(), *METRICS_PORTS.values()] if p and port_open(p)]
        if busy:
            # Another run (or anything else) answering there would pass for ours in /readyz.
            say(
                f"port(s) {', '.join(map(str, busy))} already in use; is another `make run` running?"
                " (CRM_DEV_API_PORT_BASE moves the ports)"
            )
            return 1
        for service in SERVICES:
            say(f"migrating {service}")
            upgrade(ROOT / "services" / service, database_url)
        for service, port in SERVICES.items():
            child_env = {
                **env,
                f"{service.upper()}_API_PORT": str(port),
                f"{service.upper()}_WORKER_METRICS_PORT": str(METRICS_PORTS[service]),
            }
            for role in ("app", "worker"):
                with (logs / f"{service}-{role}.log").open("ab") as log:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", f"crm_{service}.{role}"],
                            env=child_env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
                        )
                    )
        started = time.monotonic()
        for service, port in SERVICES.items():
            if stopping or not wait_ready(
                port, procs, args.ready_timeout - (time.monotonic() - started)
            ):
                if not stopping:
                    say(f"{service} did not become ready; see {shown(logs / f'{service}-app.log')}")
                    return 1
                return 0
        say(f"all five services ready in {time.monotonic() - started:.1f}s")
        for service, port in SERVICES.items():
            say(f"  {service:<10} http://127.0.0.1:{port}   docs: http://127.0.0.1:{port}/docs")
        say(
            f"admin API key: {env['CRM_ADMIN_API_KEY']}   (Authorization: Bearer {env['CRM_ADMIN_API_KEY']})"
        )
        say(f"logs in {shown(logs)}/; press Ctrl-C to stop")
        if args.exit_when_ready:
            return 0
        while not stopping:
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                module = dead[0].args[-1] if isinstance(dead[0].args, list) else dead[0].args
                say(f"a process exited unexpectedly ({module!s}); stopping")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        say("stopping")
        stop_all(procs)
        if nats_server is not None:
            nats_server.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
