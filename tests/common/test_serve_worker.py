"""``serve_worker`` in this process: metrics endpoint, signal handlers, and a drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import urllib.request

import pytest

from crm_common.db import Database
from crm_common.embedded import free_port
from crm_common.settings import ServiceSettings
from crm_common.worker import PeriodicJob, WorkerSpec, serve_worker
from tests.common.plumbing import dead_letter_table, inbox_table, outbox_table


@pytest.mark.parametrize("metrics", [True, False], ids=["metrics", "no-metrics"])
def test_serve_worker_drains_on_sigterm(crm_runtime, metrics: bool) -> None:
    port = free_port() if metrics else 0
    scraped: list[bytes] = []

    async def terminate(database: Database) -> None:
        """Runs once the worker is up: scrape the metrics, then send this process SIGTERM."""
        url = f"http://127.0.0.1:{port}/metrics"
        if metrics:
            scraped.append(
                await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
            )
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)  # the handler sets stop meanwhile: the job loop ends at once

    spec = WorkerSpec(
        service="plumbing",
        outbox=outbox_table,
        inbox=inbox_table,
        dead_letter=dead_letter_table,
        jobs=[PeriodicJob("terminate", 0.05, terminate)],
    )
    settings = ServiceSettings(
        service_name="plumbing",
        database_url=crm_runtime.database_url,
        nats_url=crm_runtime.nats_url,
        worker_metrics_port=port,
        outbox_poll_interval_seconds=0.05,
    )
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    try:
        serve_worker(spec, settings)  # returns only once SIGTERM has drained it
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for handler in root.handlers:
            if handler not in root_handlers:
                root.removeHandler(handler)
        root.setLevel(root_level)
    assert len(scraped) == int(metrics)
    assert all(b"python_info" in body for body in scraped)
