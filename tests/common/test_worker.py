"""The worker process: relay + consumers + periodic jobs, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from crm_common.db import Database
from crm_common.events import Outbox, Subscription
from crm_common.settings import ServiceSettings
from crm_common.worker import PeriodicJob, WorkerSpec, run_worker
from tests.common.plumbing import (
    dead_letter_table,
    effect_count,
    inbox_table,
    outbox_table,
    record_effect,
    sample_event,
)


async def test_worker_relays_consumes_and_runs_jobs_until_stopped(
    crm_runtime, plumbing_db, js, token
):
    subject = f"crm.plumbing.{token}.happened"
    job_runs: list[float] = []

    async def job(database: Database) -> None:
        job_runs.append(time.monotonic())
        if len(job_runs) == 1:
            raise RuntimeError("a failing run is logged and retried next time")

    spec = WorkerSpec(
        service="plumbing",
        outbox=outbox_table,
        inbox=inbox_table,
        dead_letter=dead_letter_table,
        subscriptions=[
            Subscription(subject=subject, durable=f"worker-{token}", handler=record_effect)
        ],
        jobs=[PeriodicJob("tick", 0.1, job)],
    )
    settings = ServiceSettings(
        service_name="plumbing",
        database_url=crm_runtime.database_url,
        nats_url=crm_runtime.nats_url,
        outbox_poll_interval_seconds=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(spec, settings, stop))
    event = sample_event(subject, "through the worker")
    async with plumbing_db.unit_of_work() as session:
        await Outbox(outbox_table).enqueue(session, event)
    deadline = time.monotonic() + 20
    while await effect_count(plumbing_db, event.id) == 0 or len(job_runs) < 2:
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 15)
    assert await effect_count(plumbing_db, event.id) == 1


@pytest.mark.slow
@pytest.mark.parametrize("service", ["profile", "loyalty"])
def test_service_worker_stops_cleanly_on_sigterm(service, crm_runtime):
    env = {
        **os.environ,
        "DATABASE_URL": crm_runtime.database_url,
        "NATS_URL": crm_runtime.nats_url,
        f"{service.upper()}_WORKER_METRICS_PORT": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", f"crm_{service}.worker"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        for line in proc.stderr:
            lines.append(line)
            if "worker started" in line:
                break
            assert time.monotonic() < deadline, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert '"message": "worker stopped"' in rest
