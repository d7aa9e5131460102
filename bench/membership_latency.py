"""Order event to membership event: latency through the real segment worker at a steady rate.

Set-up (not timed): a throw-away database with the segment schema, ``--customers`` active
customers with no orders, and one rule segment "ordered in the last 30 days"
(``{"orders": {"within_days": 30, "count": {"gte": 1}}}``) that the worker materialises
(empty) before the clock starts. The real segment worker (``python -m crm_segment.worker``,
default settings) runs in a subprocess, with its scheduled batch jobs (daily RFM, CLV fit,
full refresh) switched off unless ``--scheduled-jobs``: with no previous run they are all
due in the worker's first minute, i.e. inside the measurement.

Measured, in the same run:

1. Baseline: the bare JetStream hop. ``--rate`` messages per second for ``--seconds`` published
   to a scratch stream and read back by a pull consumer; latency = publish to receipt.
2. Segment: ``crm.profile.order.placed`` for a different customer each time, published at the
   same rate to the profile stream exactly as profile's relay would; latency = publish to the
   receipt of that customer's ``crm.segment.membership.changed`` (``entered``) from the segment
   stream. Every order must produce exactly one entry: the run checks the counts.

It prints p50 / p95 / p99 / max for both, the ratio of the p99s, and the segment latency split
into stages by the database's own timestamps: publish → the consumer's transaction
(``order.projected_at``) → the evaluator's batch transaction (``segment_member.entered_at``)
→ receipt of the event.

Embedded PostgreSQL (fsync on) and NATS unless ``DATABASE_URL`` / ``NATS_URL`` are set (then
point ``NATS_URL`` at a scratch server: the bench writes to the profile and segment streams).
Usage: ``.venv/bin/python bench/membership_latency.py --rate 200 --seconds 60``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import nats
import orjson
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError
from outbox_throughput import _plain, create_database, drop_database, servers, verify

from crm_common.broker import ensure_stream, stream_name
from crm_common.migrations import upgrade
from crm_common.settings import NatsSettings
from crm_profile.events import ORDER_PLACED, OrderLineV1, OrderPlacedV1
from crm_segment.config import settings

ROOT = Path(__file__).resolve().parent.parent
RULE = {"orders": {"within_days": 30, "count": {"gte": 1}}}
SCRATCH = "CRM_BENCHHOP"
#: Worker settings that switch its scheduled batches off: they are all due in the worker's
#: first minute (no previous run), so they would land inside the measured minute.
QUIET = {
    "SEGMENT_RFM_EVERY_HOURS": "0",
    "SEGMENT_CLV_FIT_EVERY_HOURS": "0",
    "SEGMENT_FULL_REFRESH_EVERY_HOURS": "0",
}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def describe(label: str, latencies: list[float]) -> str:
    """p50/p95/p99/max in milliseconds."""
    ms = [v * 1000 for v in latencies]
    return (
        f"  {label:<10} p50 {percentile(ms, 50):8.1f} ms   p95 {percentile(ms, 95):8.1f} ms   "
        f"p99 {percentile(ms, 99):8.1f} ms   max {max(ms):8.1f} ms   (n={len(ms):,})"
    )


async def setup(url: str, customers: int) -> uuid.UUID:
    """Customers and the segment; the segment's id."""
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(
            """
            INSERT INTO segment.customer (customer_external_id, customer_id, root_external_id,
                                          status, updated_at)
            SELECT 'c' || lpad(i::text, 8, '0'), gen_random_uuid(), 'c' || lpad(i::text, 8, '0'),
                   'active', now()
            FROM generate_series(1, $1::int) AS i
            """,
            customers,
        )
        segment_id = uuid.uuid4()
        await conn.execute(
            """
            INSERT INTO segment.segment (id, name, description, kind, rule, version,
                                         evaluated_version)
            VALUES ($1, 'ordered in 30 days', 'bench', 'rule', $2::jsonb, 1, 0)
            """,
            segment_id,
            orjson.dumps(RULE).decode(),
        )
        return segment_id
    finally:
        await conn.close()


async def wait_materialised(url: str, segment_id: uuid.UUID, limit: float = 120.0) -> None:
    """Until the worker has evaluated the segment."""
    conn = await asyncpg.connect(_plain(url))
    try:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            done = await conn.fetchval(
                "SELECT evaluated_version = version FROM segment.segment WHERE id = $1", segment_id
            )
            if done:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("the worker did not materialise the segment in time")
    finally:
        await conn.close()


def start_worker(database_url: str, nats_url: str, scheduled: bool) -> subprocess.Popen[bytes]:
    """The segment worker against the bench's servers (scheduled batch jobs off unless
    ``scheduled``)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "CRM_ENV": "local",
        "CRM_LOG_LEVEL": "WARNING",
        "SEGMENT_WORKER_METRICS_PORT": "0",
        **({} if scheduled else QUIET),
    }
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "SEGMENT_DATABASE_URL", "SEGMENT_NATS_URL"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "crm_segment.worker"], env=env, cwd=ROOT)


async def paced(rate: float, count: int, send: Callable[[int], Awaitable[None]]) -> None:
    """Call ``send(i)`` ``count`` times at ``rate`` per second (absolute schedule, no drift)."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def hop_baseline(js: JetStreamContext, rate: float, count: int) -> list[float]:
    """Publish-to-receipt latency of the bare JetStream hop."""
    try:
        await js.delete_stream(SCRATCH)
    except NotFoundError:
        pass
    await js.add_stream(StreamConfig(name=SCRATCH, subjects=["crm.benchhop.>"]))
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    sub = await js.pull_subscribe("crm.benchhop.>", durable="benchhop", stream=SCRATCH)

    async def consume() -> None:
        while len(received) < count:
            try:
                msgs = await sub.fetch(100, timeout=1)
            except TimeoutError:
                continue
            now = time.perf_counter()
            for msg in msgs:
                received[msg.data.decode()] = now
                await msg.ack()

    async def send(i: int) -> None:
        key = str(i)
        sent[key] = time.perf_counter()
        await js.publish("crm.benchhop.x", key.encode())

    consumer = asyncio.create_task(consume())
    await paced(rate, count, send)
    await asyncio.wait_for(consumer, 60)
    await js.delete_stream(SCRATCH)
    return [received[k] - sent[k] for k in sent]


@dataclass
class Stamps:
    """Wall-clock times (epoch seconds) per customer: order published, membership event read."""

    sent: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        """Publish-to-receipt seconds of every order."""
        return [self.received[k] - self.sent[k] for k in self.sent]


async def segment_latency(
    js: JetStreamContext, rate: float, count: int, customers: int, segment_id: uuid.UUID
) -> Stamps:
    """Publish-to-membership-event latency through the segment worker (entries into the
    bench's segment; the built-in RFM group and lifecycle segments publish theirs too)."""
    ours = str(segment_id)

    def entry(body: dict[str, Any]) -> bool:
        return body.get("change") == "entered" and body.get("segment_id") == ours

    stamps = Stamps()
    entries = 0
    # durable: an ephemeral consumer may be reaped while the run waits for late duplicates
    sub = await js.pull_subscribe(
        "crm.segment.membership.changed",
        durable="bench_membership",
        stream=stream_name("segment"),
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
    )

    async def consume() -> None:
        nonlocal entries
        while len(stamps.received) < count:
            try:
                msgs = await sub.fetch(200, timeout=1)
            except TimeoutError:
                continue
            now = time.time()
            for msg in msgs:
                body = orjson.loads(msg.data)
                if entry(body):
                    entries += 1
                    stamps.received.setdefault(body["customer_external_id"], now)
                await msg.ack()

    async def send(i: int) -> None:
        customer = f"c{1 + i % customers:08d}"
        order = OrderPlacedV1(
            order_id=str(uuid.uuid4()),
            order_external_id=f"o-{uuid.uuid4().hex}",
            customer_external_id=customer,
            placed_at=datetime.now(UTC),
            currency="EUR",
            lines=[OrderLineV1(sku="SKU-1", quantity=1, unit_price_minor=1999, category="books")],
            subtotal_minor=1999,
            discount_minor=0,
            shipping_minor=0,
            total_minor=1999,
            channel="web",
            coupon_codes=[],
            points_redeemed=0,
        )
        envelope = ORDER_PLACED.envelope(order, subject_id=customer)
        stamps.sent[customer] = time.time()
        await js.publish(envelope.subject, envelope.body(), headers=envelope.headers())

    consumer = asyncio.create_task(consume())
    await paced(rate, count, send)
    await asyncio.wait_for(consumer, 120)
    await asyncio.sleep(2)  # late duplicates would arrive now
    try:
        more = await sub.fetch(1000, timeout=1)
    except TimeoutError:
        more = []
    entries += sum(1 for m in more if entry(orjson.loads(m.data)))
    verify(entries == count, f"{entries} entries for {count} orders (must be exactly one each)")
    return stamps


async def stages(url: str, segment_id: uuid.UUID, stamps: Stamps) -> list[str]:
    """Where the time goes, per order, from the database's own timestamps (same machine, same
    clock): publish → the consumer's transaction (``order.projected_at``) → the evaluator's
    batch transaction (``segment_member.entered_at``) → receipt of the event (commit, outbox
    relay poll, publish, delivery)."""
    conn = await asyncpg.connect(_plain(url))
    try:
        projected = {
            r["root_external_id"]: r["projected_at"].timestamp()
            for r in await conn.fetch('SELECT root_external_id, projected_at FROM segment."order"')
        }
        entered = {
            r["customer_external_id"]: r["entered_at"].timestamp()
            for r in await conn.fetch(
                "SELECT customer_external_id, entered_at FROM segment.segment_member "
                "WHERE segment_id = $1",
                segment_id,
            )
        }
    finally:
        await conn.close()
    keys = [k for k in stamps.sent if k in projected and k in entered]
    parts = {
        "→ consumer": [projected[k] - stamps.sent[k] for k in keys],
        "→ evaluator": [entered[k] - projected[k] for k in keys],
        "→ event": [stamps.received[k] - entered[k] for k in keys],
    }
    return [describe(label, values) for label, values in parts.items()]


async def run(args: argparse.Namespace) -> None:
    """Set up, measure, print."""
    count = int(args.rate * args.seconds)
    with servers(durable=not args.no_fsync) as where:
        name = f"crm_bench_{uuid.uuid4().hex[:10]}"
        url = await create_database(where.admin_url, name)
        nc = await nats.connect(where.nats_url)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            await asyncio.to_thread(upgrade, ROOT / "services" / "segment", url)
            js = nc.jetstream()
            nats_settings = NatsSettings(nats_url=where.nats_url)
            await ensure_stream(js, "profile", nats_settings)
            await ensure_stream(js, "segment", nats_settings)
            segment_id = await setup(url, max(count, args.customers))
            workers = [
                start_worker(url, where.nats_url, args.scheduled_jobs) for _ in range(args.workers)
            ]
            await wait_materialised(url, segment_id)
            print(
                f"order → membership latency: {args.rate:g} orders/s for {args.seconds:g} s "
                f"({count:,} orders, one new member each)\n  {where.description}\n"
                f"  Python {platform.python_version()}, {os.cpu_count()} CPUs; "
                f"{args.workers} worker process{'es' if args.workers > 1 else ''}: "
                f"evaluation every {settings.evaluation_interval_seconds:g} s, batches of "
                f"{settings.evaluation_batch_size}, outbox poll "
                f"{settings.outbox_poll_interval_seconds:g} s, scheduled batch jobs "
                f"{'on' if args.scheduled_jobs else 'off'}"
            )
            hop = await hop_baseline(js, args.rate, count)
            print(describe("JetStream", hop))
            stamps = await segment_latency(
                js, args.rate, count, max(count, args.customers), segment_id
            )
            seg = stamps.latencies()
            print(describe("segment", seg))
            print("  stages (database timestamps):")
            for line in await stages(url, segment_id, stamps):
                print("  " + line)
            print(
                f"  ratio of p99s segment / JetStream hop: {percentile(seg, 99) / percentile(hop, 99):.0f}"
            )
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.terminate()
            for worker in workers:
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
            await nc.close()
            await drop_database(where.admin_url, name)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="orders per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="segment worker processes (replicas: they share the consumers and the queue)",
    )
    parser.add_argument(
        "--no-fsync", action="store_true", help="embedded PostgreSQL without fsync (as the tests)"
    )
    parser.add_argument(
        "--scheduled-jobs",
        action="store_true",
        help="leave the worker's scheduled RFM / CLV fit / full refresh on (due in its first "
        "minute, so they run during the measurement)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
