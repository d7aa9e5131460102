"""A service's worker process: outbox relay, inbox consumers and periodic jobs, drained on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import uvloop
from prometheus_client import start_http_server
from sqlalchemy import Table

from crm_common.broker import close_nats, connect_nats, ensure_stream
from crm_common.db import Database
from crm_common.events.inbox import Consumer, Subscription
from crm_common.events.outbox import OutboxRelay
from crm_common.logs import setup_logging
from crm_common.settings import ServiceSettings
from crm_common.telemetry import instrument_libraries, setup_tracing

__all__ = ["PeriodicJob", "WorkerSpec", "run_worker", "serve_worker"]

logger = logging.getLogger("crm.worker")


@dataclass(frozen=True)
class PeriodicJob:
    """Work the worker runs every ``interval`` seconds (e.g. a nightly batch), given the database."""

    name: str
    interval: float
    run: Callable[[Database], Awaitable[None]]


@dataclass(frozen=True)
class WorkerSpec:
    """What a service's worker runs: its outbox relay, its consumers and its periodic jobs."""

    service: str
    outbox: Table
    inbox: Table
    dead_letter: Table
    subscriptions: Sequence[Subscription] = ()
    jobs: Sequence[PeriodicJob] = field(default=())


async def _periodic(job: PeriodicJob, database: Database, stop: asyncio.Event) -> None:
    """Run ``job`` every ``interval`` until ``stop``; a failure is logged and retried next time."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=job.interval)
            return
        except TimeoutError:
            pass
        try:
            await job.run(database)
        except Exception:
            logger.exception("periodic job failed", extra={"job": job.name})


async def run_worker(spec: WorkerSpec, settings: ServiceSettings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then finish in-hand messages, drain NATS and close the pool."""
    database = Database.from_settings(settings, application_name=f"{spec.service}-worker")
    nc = await connect_nats(settings, name=f"{spec.service}-worker")
    js = nc.jetstream()
    try:
        await ensure_stream(js, spec.service, settings)
        relay = OutboxRelay(
            database,
            spec.outbox,
            js,
            service=spec.service,
            batch_size=settings.outbox_batch_size,
            poll_interval=settings.outbox_poll_interval_seconds,
            busy_interval=settings.outbox_busy_poll_interval_seconds,
        )
        tasks = [asyncio.create_task(relay.run(stop), name="outbox-relay")]
        for sub in spec.subscriptions:
            consumer = Consumer(sub, database, spec.inbox, spec.dead_letter, js)
            tasks.append(asyncio.create_task(consumer.run(stop), name=sub.durable))
        tasks += [
            asyncio.create_task(_periodic(job, database, stop), name=job.name) for job in spec.jobs
        ]
        logger.info("worker started", extra={"consumers": [s.durable for s in spec.subscriptions]})
        await asyncio.gather(*tasks)
    finally:
        await close_nats(nc)
        await database.dispose()
        logger.info("worker stopped")


def serve_worker(spec: WorkerSpec, settings: ServiceSettings) -> None:
    """Entry point: JSON logs, tracing, metrics endpoint, and SIGTERM/SIGINT → graceful drain."""
    setup_logging(f"{spec.service}-worker", settings.log_level)
    setup_tracing(settings, spec.service)
    instrument_libraries()
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.api_host)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(spec, settings, stop)

    # uvloop, as uvicorn uses for the APIs: the relay's and the consumers' time goes largely
    # to socket traffic with PostgreSQL and NATS, which uvloop handles in C.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
