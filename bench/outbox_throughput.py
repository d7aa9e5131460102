"""Outbox relay throughput against a raw JetStream publish loop, measured in one run.

1. Baseline: ``js.publish_async`` of N events in a loop (subjects, headers and bodies exactly as
   the relay sends them, prepared beforehand), then every PubAck awaited.
2. Outbox: N envelopes inserted with ``Outbox.enqueue_many`` in committed transactions of 1,000
   rows, then one ``OutboxRelay`` (batches of 500) draining the table, timed from its first
   claim to the call that finds the outbox empty. End to end is insert time plus relay time.

Each phase publishes fresh event ids into a freshly created stream, and the stream's message
count is checked afterwards, so JetStream's duplicate detection cannot hide work.

Embedded PostgreSQL and NATS are started on free ports in a temporary directory unless
``DATABASE_URL`` / ``NATS_URL`` are set; then a throw-away database ``crm_bench_<hex>`` is
created on that server (and dropped afterwards) and the events go to a stream of their own,
``CRM_BENCH`` (subjects ``crm.bench.>``), so no service's stream is touched.

Usage: ``make bench`` or ``.venv/bin/python bench/outbox_throughput.py --events 50000``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.broker import stream_config
from crm_common.db import Database, make_metadata
from crm_common.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from crm_common.events import Envelope, EventType, Outbox, OutboxRelay, make_outbox_table
from crm_common.migrations import upgrade
from crm_common.settings import NatsSettings, normalise_database_url

ROOT = Path(__file__).resolve().parent.parent
BENCH_SERVICE = "bench"  # stream CRM_BENCH: never a service's own stream
#: The profile schema's outbox, as its migrations create it (the same factory the service uses).
outbox_table = make_outbox_table(make_metadata("profile"))


class OrderPlaced(BaseModel):
    """A payload of a realistic size (about 250 bytes of JSON)."""

    order_id: uuid.UUID
    order_external_id: str
    customer_external_id: str
    placed_at: datetime
    currency: str
    total_minor: int
    item_count: int
    channel: str


ORDER_PLACED = EventType(f"crm.{BENCH_SERVICE}.order.placed", OrderPlaced)


@dataclass
class Servers:
    """Where the benchmark runs: a database URL (the bench's own database) and a NATS URL."""

    admin_url: str
    nats_url: str
    description: str


@contextmanager
def servers(*, durable: bool) -> Iterator[Servers]:
    """Embedded PostgreSQL and NATS in a temporary directory, or those of the environment."""
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    postgres: EmbeddedPostgres | None = None
    nats_server: EmbeddedNats | None = None
    try:
        if os.environ.get("DATABASE_URL"):
            admin_url = normalise_database_url(os.environ["DATABASE_URL"])
            pg = "PostgreSQL from DATABASE_URL"
        else:
            postgres = EmbeddedPostgres(workdir / "pg", free_port())
            admin_url = postgres.start(durable=durable)
            pg = f"embedded PostgreSQL (fsync {'on' if durable else 'off'})"
        if os.environ.get("NATS_URL"):
            nats_url = os.environ["NATS_URL"]
            ns = "NATS from NATS_URL"
        else:
            nats_server = EmbeddedNats(workdir / "nats", free_port())
            nats_url = nats_server.start()
            ns = "embedded NATS (JetStream file storage)"
        yield Servers(admin_url, nats_url, f"{pg}, {ns}")
    finally:
        if nats_server is not None:
            nats_server.stop()
        if postgres is not None:
            postgres.stop()
            shutil.rmtree(postgres.data_dir.resolve(), ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _plain(url: str) -> str:
    """asyncpg's URL form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` next to ``admin_url``'s and return its URL."""
    conn = await asyncpg.connect(_plain(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(admin_url: str, name: str) -> None:
    """Drop the benchmark's database."""
    conn = await asyncpg.connect(_plain(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_events(count: int) -> list[Envelope]:
    """``count`` envelopes with fresh ids."""
    now = datetime.now(UTC)
    return [
        ORDER_PLACED.envelope(
            OrderPlaced(
                order_id=uuid.uuid4(),
                order_external_id=f"order-{i:08d}",
                customer_external_id=f"customer-{i % 5000:06d}",
                placed_at=now,
                currency="EUR",
                total_minor=1999 + i % 10_000,
                item_count=1 + i % 5,
                channel="web",
            ),
            subject_id=f"customer-{i % 5000:06d}",
        )
        for i in range(count)
    ]


async def fresh_stream(js: JetStreamContext) -> str:
    """Delete and recreate the benchmark's stream (the services' stream policy)."""
    config = stream_config(BENCH_SERVICE, NatsSettings())
    name = f"CRM_{BENCH_SERVICE.upper()}"
    try:
        await js.delete_stream(name)
    except NotFoundError:
        pass
    await js.add_stream(config)
    return name


async def stream_count(js: JetStreamContext, name: str) -> int:
    """Messages stored in stream ``name``."""
    return int((await js.stream_info(name)).state.messages)


async def baseline(js: JetStreamContext, count: int) -> float:
    """Seconds to publish ``count`` events with ``publish_async`` and collect every PubAck."""
    stream = await fresh_stream(js)
    messages = [(e.subject, e.body(), e.headers()) for e in make_events(count)]
    start = time.perf_counter()
    futures = [await js.publish_async(s, b, headers=h) for s, b, h in messages]
    acks = await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    duplicates = sum(1 for ack in acks if ack.duplicate)
    stored = await stream_count(js, stream)
    verify(duplicates == 0, f"baseline: {duplicates} acks were duplicates")
    verify(stored == count, f"baseline: stream holds {stored} of {count} events")
    return elapsed


async def outbox_phase(
    js: JetStreamContext, database: Database, count: int, *, chunk: int, batch: int
) -> tuple[float, float]:
    """Seconds to insert ``count`` events in transactions of ``chunk``, and to relay them all."""
    stream = await fresh_stream(js)
    outbox = Outbox(outbox_table)
    events = make_events(count)
    start = time.perf_counter()
    for offset in range(0, count, chunk):
        async with database.unit_of_work() as session:
            await outbox.enqueue_many(session, events[offset : offset + chunk])
    inserted = time.perf_counter()
    relay = OutboxRelay(database, outbox_table, js, service="profile", batch_size=batch)
    relay_start = time.perf_counter()
    while await relay.publish_batch():
        pass
    relayed = time.perf_counter()
    stored = await stream_count(js, stream)
    left = await relay.backlog()
    verify(relay.published == count, f"outbox: relay published {relay.published} of {count}")
    verify(relay.duplicates == 0, f"outbox: {relay.duplicates} acks were duplicates")
    verify(stored == count, f"outbox: stream holds {stored} of {count} events")
    verify(left == 0, f"outbox: {left} rows left in the outbox")
    return inserted - start, relayed - relay_start


def verify(condition: bool, message: str) -> None:
    """Stop with ``message`` when a phase did not do all of its work."""
    if not condition:
        raise RuntimeError(message)


async def run(args: argparse.Namespace) -> None:
    """Set up, run both phases, print the figures."""
    with servers(durable=not args.no_fsync) as where:
        name = f"crm_bench_{uuid.uuid4().hex[:10]}"
        url = await create_database(where.admin_url, name)
        engine = create_async_engine(url, pool_size=2, max_overflow=0)
        database = Database.from_engine(engine)
        nc = await nats.connect(where.nats_url)
        try:
            await asyncio.to_thread(upgrade, ROOT / "services" / "profile", url)
            async with engine.connect() as conn:
                pg_version = (await conn.execute(text("SHOW server_version"))).scalar_one()
            js = nc.jetstream()
            version = nc.connected_server_version
            n = args.events
            print(f"outbox throughput: {n:,} events, {where.description}")
            print(
                f"  PostgreSQL {pg_version}, nats-server {version.major}.{version.minor}.{version.patch}, "
                f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
            )
            print(f"  payload {len(make_events(1)[0].body())} bytes + CloudEvents headers")
            base = await baseline(js, n)
            insert, relay = await outbox_phase(
                js, database, n, chunk=args.insert_chunk, batch=args.batch_size
            )
            rows = [
                ("baseline: publish_async + all acks", base),
                (f"outbox: insert ({args.insert_chunk} rows/commit)", insert),
                (f"outbox: relay (batch {args.batch_size}) to empty", relay),
                ("outbox: end to end (insert + relay)", insert + relay),
            ]
            print()
            for label, seconds in rows:
                print(f"  {label:<40} {seconds:7.2f} s {n / seconds:>10,.0f} events/s")
            print()
            print(f"  relay / baseline        {base / relay:5.2f}")
            print(f"  end to end / baseline   {base / (insert + relay):5.2f}")
        finally:
            await nc.close()
            await engine.dispose()
            await drop_database(where.admin_url, name)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per phase")
    parser.add_argument("--batch-size", type=int, default=500, help="relay batch size")
    parser.add_argument("--insert-chunk", type=int, default=1000, help="rows per insert commit")
    parser.add_argument(
        "--no-fsync", action="store_true", help="embedded PostgreSQL without fsync (as the tests)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
