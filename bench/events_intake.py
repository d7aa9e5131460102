"""``POST /v1/events`` through to JetStream, next to a raw asyncpg COPY of the same rows.

Before the rounds the shop exists: ``--customers`` (default 100,000) customers and
``--history`` (default 1,000,000) older events, a small shop's last few days, both vacuumed.
Each round (``--rounds``, default 5) measures, on the same servers:

1. COPY: the rows the intake would store for ``--batches`` batches of 1,000 fresh events
   (customer ids resolved beforehand) written to ``profile.behaviour_event`` with asyncpg's
   ``copy_records_to_table``, one COPY per batch, ``--clients`` connections at once; half of
   them before the intake's batches and half after, so both write to the same table size.
2. Intake: the real profile API (``python -m crm_profile.app`` under uvicorn) and the real
   profile worker (``python -m crm_profile.worker``: its OutboxRelay publishes to JetStream) in
   subprocesses. ``--clients`` concurrent clients POST other batches; the clock stops when every
   batch was answered 202 *and* the stream holds one ``crm.profile.interaction.recorded``
   message per batch. The messages are then read back and must carry every event.

It prints each round, the median round's events/s and ratio intake / COPY (goal ≥ 0.5), batch
latency percentiles, and the CPU time each process used per 1,000 events, which explains the
ratio. Events name customers at random; 10% are anonymous.

Embedded PostgreSQL and NATS as in ``outbox_throughput.py`` unless ``DATABASE_URL`` /
``NATS_URL`` are set; a throw-away database ``crm_bench_<hex>`` is created and dropped. The
intake publishes to the profile service's own stream ``CRM_PROFILE`` (the service under test
does), so point ``NATS_URL`` at a scratch server, never a shared one.

Usage: ``make bench``, or for the empty-table case
``.venv/bin/python bench/events_intake.py --customers 5000 --history 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import nats
import orjson
import psutil
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from outbox_throughput import _plain, create_database, drop_database, servers, verify

from crm_common.broker import ensure_stream, stream_name
from crm_common.embedded import free_port, wait_for_port
from crm_common.events import unpack_body
from crm_common.migrations import upgrade
from crm_common.settings import NatsSettings
from crm_profile.behaviour.repository import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SUBJECT = "crm.profile.interaction.recorded"
ADMIN_KEY = "bench-admin-key"
#: Share of each type in the generated traffic (roughly a shop's mix).
MIX = {
    "page_view": 30,
    "product_view": 25,
    "search": 8,
    "add_to_cart": 10,
    "remove_from_cart": 3,
    "checkout_started": 4,
    "review_submitted": 2,
    "complaint_filed": 1,
    "app_open": 10,
    "sign_in": 4,
    "recommendation_clicked": 3,
}


def _properties(type_: str, rnd: random.Random) -> dict[str, Any]:
    """Realistic properties of one event of ``type_``."""
    sku = f"SKU-{rnd.randrange(20_000):05d}"
    category = rnd.choice(["shoes", "socks", "shirts", "bags", "phones", "cases"])
    if type_ == "page_view":
        return {"url": f"https://shop.example/c/{category}?page={rnd.randrange(9)}"}
    if type_ == "product_view":
        return {"sku": sku, "category": category}
    if type_ == "search":
        return {"query": rnd.choice(["red shoes", "wool socks", "usb-c case"]), "results_count": 12}
    if type_ in ("add_to_cart", "remove_from_cart"):
        return {
            "sku": sku,
            "quantity": rnd.randint(1, 3),
            "unit_price_minor": 1999,
            "category": category,
        }
    if type_ == "checkout_started":
        return {"cart_value_minor": 5997, "currency": "EUR", "skus": [sku, "SKU-00001"]}
    if type_ == "review_submitted":
        return {"sku": sku, "rating": rnd.randint(1, 5), "text": "Fits well, good value."}
    if type_ == "complaint_filed":
        return {"topic": "delivery", "order_external_id": f"o-{rnd.randrange(10**6)}"}
    if type_ == "app_open":
        return {"app_version": "5.2.0", "platform": rnd.choice(["ios", "android"])}
    if type_ == "sign_in":
        return {"method": "password"}
    return {
        "sku": sku,
        "placement": "home",
        "strategy": "similar",
        "experiment": "e1",
        "variant": "b",
    }


def make_batches(batches: int, size: int, customers: int, seed: int) -> list[list[dict[str, Any]]]:
    """``batches`` lists of ``size`` events with fresh ids."""
    rnd = random.Random(seed)
    types = list(MIX)
    weights = list(MIX.values())
    now = datetime.now(UTC)
    out = []
    for _ in range(batches):
        batch = []
        for type_ in rnd.choices(types, weights, k=size):
            item: dict[str, Any] = {
                "event_id": str(uuid.uuid4()),
                "type": type_,
                "occurred_at": (now - timedelta(seconds=rnd.randrange(86_400))).isoformat(),
                "properties": _properties(type_, rnd),
            }
            if rnd.random() < 0.1:
                item["anonymous_id"] = f"anon-{rnd.randrange(10**6):06d}"
            else:
                item["customer_external_id"] = f"customer-{rnd.randrange(customers):06d}"
            batch.append(item)
        out.append(batch)
    return out


def copy_records(
    batch: list[dict[str, Any]], customer_ids: dict[str, uuid.UUID]
) -> list[tuple[Any, ...]]:
    """The rows the intake stores for ``batch``, ready for ``copy_records_to_table``."""
    records = []
    for e in batch:
        p = e["properties"]
        external = e.get("customer_external_id")
        value = None
        if "unit_price_minor" in p:
            value = p["unit_price_minor"] * p["quantity"]
        elif "cart_value_minor" in p:
            value = p["cart_value_minor"]
        records.append(
            (
                e["event_id"],
                e["type"],
                customer_ids.get(external) if external else None,
                external,
                e.get("anonymous_id"),
                datetime.fromisoformat(e["occurred_at"]),
                p.get("sku"),
                p.get("category"),
                value,
                orjson.dumps(p).decode(),
            )
        )
    return records


async def create_customers(url: str, count: int) -> dict[str, uuid.UUID]:
    """``count`` customers as the shop would have upserted them; external id → id."""
    ids = {f"customer-{i:06d}": uuid.uuid4() for i in range(count)}
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.copy_records_to_table(
            "customer",
            schema_name="profile",
            columns=["id", "external_id", "status", "attributes"],
            records=[(v, k, "active", "{}") for k, v in ids.items()],
        )
        # As autovacuum would have by then: the look-up of live customers is an index-only
        # scan, which skips the table's pages only once they are marked all-visible.
        await conn.execute("VACUUM ANALYZE profile.customer")
    finally:
        await conn.close()
    return ids


async def store_history(url: str, count: int) -> None:
    """``count`` older events (last 90 days, the customers above, 10% anonymous), then VACUUM.

    A shop's table is never empty: its indexes' size is part of what every insert costs.
    """
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(
            """
            WITH c AS (SELECT array_agg(id) AS ids, array_agg(external_id) AS xs
                       FROM profile.customer)
            INSERT INTO profile.behaviour_event (
                event_id, type, customer_id, customer_external_id, anonymous_id, occurred_at,
                sku, category, value_minor, properties)
            SELECT gen_random_uuid()::text, (ARRAY['page_view', 'product_view', 'app_open',
                       'add_to_cart', 'search'])[1 + g % 5],
                   CASE WHEN g % 10 <> 0 THEN c.ids[1 + k] END,
                   CASE WHEN g % 10 <> 0 THEN c.xs[1 + k] END,
                   CASE WHEN g % 10 = 0 THEN 'anon-' || lpad((g % 1000000)::text, 6, '0') END,
                   now() - random() * interval '90 days',
                   'SKU-' || lpad((g % 20000)::text, 5, '0'), 'shoes', NULL,
                   '{"sku": "SKU-00001", "category": "shoes"}'
            FROM c, generate_series(1, $1) AS g,
                 LATERAL (SELECT (hashint4(g) & 2147483647) % cardinality(c.ids) AS k) AS r
            """,
            count,
        )
        await conn.execute("VACUUM ANALYZE profile.behaviour_event")
    finally:
        await conn.close()


async def copy_phase(
    url: str, records: list[list[tuple[Any, ...]]], clients: int, meter: CpuMeter
) -> tuple[float, list[float], dict[str, float]]:
    """Seconds to COPY every batch (``clients`` connections at once), latencies, CPU used."""
    pool = await asyncpg.create_pool(_plain(url), min_size=clients, max_size=clients)
    queue: asyncio.Queue[list[tuple[Any, ...]]] = asyncio.Queue()
    for batch in records:
        queue.put_nowait(batch)
    latencies: list[float] = []

    async def worker() -> None:
        async with pool.acquire() as conn:
            while not queue.empty():
                batch = queue.get_nowait()
                start = time.perf_counter()
                await conn.copy_records_to_table(
                    "behaviour_event", schema_name="profile", columns=COLUMNS, records=batch
                )
                latencies.append(time.perf_counter() - start)

    try:
        cpu = meter.snapshot()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        return elapsed, latencies, meter.used(cpu, meter.snapshot())
    finally:
        await pool.close()


@dataclass
class Processes:
    """The profile API and worker under test."""

    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        """SIGTERM both and wait."""
        for proc in (self.api, self.worker):
            if proc.poll() is None:
                proc.terminate()
        for proc in (self.api, self.worker):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def start_service(database_url: str, nats_url: str) -> Processes:
    """Start ``crm_profile.app`` (uvicorn) and ``crm_profile.worker`` against the bench's servers."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "NATS_URL": nats_url,
        "CRM_ENV": "local",
        "CRM_ADMIN_API_KEY": ADMIN_KEY,
        "CRM_LOG_LEVEL": "WARNING",
        "PROFILE_API_PORT": str(port),
        "PROFILE_WORKER_METRICS_PORT": "0",
    }
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "PROFILE_DATABASE_URL", "PROFILE_NATS_URL"):
        env.pop(name, None)
    api = subprocess.Popen([sys.executable, "-m", "crm_profile.app"], env=env, cwd=ROOT)
    worker = subprocess.Popen([sys.executable, "-m", "crm_profile.worker"], env=env, cwd=ROOT)
    processes = Processes(api, worker, f"http://127.0.0.1:{port}")
    try:
        wait_for_port(port, 60)
    except BaseException:
        processes.stop()
        raise
    return processes


class HttpConnection:
    """A minimal keep-alive HTTP/1.1 client: the load generator should cost next to nothing.

    httpx spent more CPU per request than the API under test (about 75 ms per 220 KiB batch on
    the reference machine), so the clients talk to uvicorn over plain asyncio streams instead.
    """

    def __init__(self, url: str) -> None:
        """Connect to ``url`` (``http://host:port``) on first use."""
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> HttpConnection:
        """Open the connection."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def post(self, path: str, body: bytes, key: str) -> tuple[int, bytes]:
        """POST a JSON ``body``; the status and the response body."""
        assert self.reader is not None
        assert self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


class CpuMeter:
    """CPU seconds each part of the system used between two snapshots (where it runs locally)."""

    def __init__(self, parts: dict[str, list[psutil.Process]]) -> None:
        """``parts``: label → its processes; a PostgreSQL postmaster brings its backends."""
        self.parts = parts

    def snapshot(self) -> dict[str, dict[int, float]]:
        """CPU seconds so far of every live process of every part, by pid."""
        out: dict[str, dict[int, float]] = {}
        for label, roots in self.parts.items():
            times: dict[int, float] = {}
            for root in roots:
                try:
                    family = root.children() if label == "PostgreSQL" else []
                    for proc in [root, *family]:
                        cpu = proc.cpu_times()
                        times[proc.pid] = cpu.user + cpu.system
                except psutil.Error:
                    continue
            out[label] = times
        return out

    @staticmethod
    def used(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        """CPU seconds per part between ``before`` and ``after`` (new processes from zero)."""
        return {
            label: sum(t - before.get(label, {}).get(pid, 0.0) for pid, t in times.items())
            for label, times in after.items()
        }


async def local_processes(url: str, nats_port: int | None) -> dict[str, list[psutil.Process]]:
    """The PostgreSQL postmaster and nats-server, when they run on this machine."""
    parts: dict[str, list[psutil.Process]] = {}
    conn = await asyncpg.connect(_plain(url))
    try:  # asked while the backend is alive: its parent is the postmaster
        postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
        if postmaster is not None and "postgres" in postmaster.name():
            parts["PostgreSQL"] = [postmaster]
    except psutil.Error:
        pass
    finally:
        await conn.close()
    for conn_info in psutil.net_connections(kind="tcp") if nats_port else []:
        if (
            conn_info.laddr
            and conn_info.laddr.port == nats_port
            and conn_info.status == "LISTEN"
            and conn_info.pid
        ):
            parts["NATS"] = [psutil.Process(conn_info.pid)]
    return parts


async def subject_state(js: JetStreamContext) -> tuple[int, int]:
    """(messages under ``SUBJECT``, last sequence) of the profile stream."""
    info = await js.stream_info(stream_name("profile"), subjects_filter=SUBJECT)
    return int((info.state.subjects or {}).get(SUBJECT, 0)), int(info.state.last_seq)


@dataclass
class Intake:
    """Figures of one intake phase."""

    answered: float
    published: float
    latencies: list[float]
    first_seq: int
    cpu: dict[str, float]


async def intake_phase(
    url: str, js: JetStreamContext, bodies: list[bytes], clients: int, meter: CpuMeter
) -> Intake:
    """Post every body; seconds until all were answered and until all were published."""
    before, last_seq = await subject_state(js)
    cpu = meter.snapshot()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    accepted = 0

    async def client() -> None:
        nonlocal accepted
        async with HttpConnection(url) as http:
            while not queue.empty():
                body = queue.get_nowait()
                start = time.perf_counter()
                status, answer = await http.post("/v1/events", body, ADMIN_KEY)
                latencies.append(time.perf_counter() - start)
                verify(status == 202, f"intake: {status} {answer[:300]!r}")
                result = orjson.loads(answer)
                verify(not result["rejected"], f"intake: rejected {result['rejected'][:3]}")
                accepted += result["accepted"]

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    answered = time.perf_counter() - start
    deadline = time.monotonic() + 120
    while (await subject_state(js))[0] - before < len(bodies):
        verify(
            time.monotonic() < deadline, "intake: the relay did not publish every batch in 120 s"
        )
        await asyncio.sleep(0.005)
    published = time.perf_counter() - start
    return Intake(answered, published, latencies, last_seq + 1, meter.used(cpu, meter.snapshot()))


async def published_events(js: JetStreamContext, first_seq: int) -> tuple[int, int]:
    """(messages, events) under ``SUBJECT`` from stream sequence ``first_seq`` on."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=first_seq,
        inactive_threshold=30.0,
    )
    sub = await js.pull_subscribe(SUBJECT, config=config)
    messages = events = 0
    try:
        while True:
            try:
                batch = await sub.fetch(50, timeout=2)
            except TimeoutError:
                break
            for msg in batch:
                messages += 1
                events += len(orjson.loads(unpack_body(msg.data))["interactions"])
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return messages, events


async def wait_ready(url: str) -> None:
    """Until ``/readyz`` answers 200 (database and NATS reachable)."""
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(600):
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the profile API did not become ready")


@dataclass
class Round:
    """One COPY phase and one intake phase over the same number of fresh events."""

    copy_s: float
    copy_latencies: list[float]
    copy_cpu: dict[str, float]
    intake: Intake

    @property
    def ratio(self) -> float:
        """Intake events/s (through JetStream) over COPY events/s."""
        return self.copy_s / self.intake.published


def report(n: int, rounds: list[Round]) -> None:
    """Print each round, then medians, pooled latencies and CPU per 1,000 events."""
    print()
    print(
        f"  {'round':<6} {'COPY ev/s':>10} {'intake ev/s':>12} {'answered ev/s':>14} {'ratio':>6}"
    )
    for i, r in enumerate(rounds, 1):
        print(
            f"  {i:<6} {n / r.copy_s:>10,.0f} {n / r.intake.published:>12,.0f} "
            f"{n / r.intake.answered:>14,.0f} {r.ratio:>6.2f}"
        )
    median = sorted(rounds, key=lambda r: r.ratio)[len(rounds) // 2]
    print()
    print(f"  COPY (copy_records_to_table)              {n / median.copy_s:>10,.0f} events/s")
    print(
        f"  intake, answered and published to JetStream {n / median.intake.published:>8,.0f} events/s"
    )
    print(f"  intake / COPY (median round)              {median.ratio:>10.2f}")
    print()
    intake_lat = [x for r in rounds for x in r.intake.latencies]
    copy_lat = [x for r in rounds for x in r.copy_latencies]
    for label, values in (("intake", intake_lat), ("COPY", copy_lat)):
        print(
            f"  {label} batch latency: p50 {percentile(values, 50) * 1000:.0f} ms, "
            f"p99 {percentile(values, 99) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"
        )
    total = n * len(rounds)
    print()
    print(f"  CPU ms per 1,000 events       {'COPY':>8} {'intake':>8}")
    labels = rounds[0].intake.cpu
    for label in labels:
        copy_ms = sum(r.copy_cpu.get(label, 0.0) for r in rounds) / total * 1e6
        intake_ms = sum(r.intake.cpu.get(label, 0.0) for r in rounds) / total * 1e6
        print(f"    {label:<28} {copy_ms:8.1f} {intake_ms:8.1f}")
    copy_total = sum(sum(r.copy_cpu.values()) for r in rounds) / total * 1e6
    intake_total = sum(sum(r.intake.cpu.values()) for r in rounds) / total * 1e6
    print(f"    {'total':<28} {copy_total:8.1f} {intake_total:8.1f}")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def one_round(
    args: argparse.Namespace,
    seed: int,
    url: str,
    js: JetStreamContext,
    api_url: str,
    meter: CpuMeter,
    customer_ids: dict[str, uuid.UUID],
) -> Round:
    """COPY one set of fresh events, then post another through the intake, and check both."""
    n = args.batches * args.batch_size
    copy_rows = [
        copy_records(b, customer_ids)
        for b in make_batches(args.batches, args.batch_size, args.customers, seed=seed)
    ]
    bodies = [
        orjson.dumps({"events": b})
        for b in make_batches(args.batches, args.batch_size, args.customers, seed=seed + 1)
    ]
    # The COPY's batches go half before and half after the intake's, so that both write to a
    # table of the same size on average: index inserts grow dearer as the table grows, and the
    # work one phase leaves to PostgreSQL (checkpoints) falls on the next. With the COPY always
    # first, the intake paid ≈1 ms of PostgreSQL CPU per 1,000 events more (bench/README.md).
    half = len(copy_rows) // 2
    first = await copy_phase(url, copy_rows[:half], args.clients, meter)
    intake = await intake_phase(api_url, js, bodies, args.clients, meter)
    second = await copy_phase(url, copy_rows[half:], args.clients, meter)
    copy_s = first[0] + second[0]
    copy_latencies = first[1] + second[1]
    copy_cpu = {label: first[2].get(label, 0.0) + second[2].get(label, 0.0) for label in second[2]}
    messages, events = await published_events(js, intake.first_seq)
    verify(messages == args.batches, f"stream holds {messages} of {args.batches} batch messages")
    verify(events == n, f"stream messages carry {events} of {n} events")
    return Round(copy_s, copy_latencies, copy_cpu, intake)


async def describe(url: str, nc: nats.NATS, where: str, args: argparse.Namespace) -> None:
    """Print what runs where."""
    pg = await asyncpg.connect(_plain(url))
    try:
        pg_version = await pg.fetchval("SHOW server_version")
    finally:
        await pg.close()
    version = nc.connected_server_version
    body = orjson.dumps({"events": make_batches(1, args.batch_size, args.customers, seed=0)[0]})
    print(
        f"events intake: {args.rounds} rounds of {args.batches} batches of "
        f"{args.batch_size:,} events, {args.clients} clients; {args.customers:,} customers, "
        f"{args.history:,} events stored before"
    )
    print(f"  {where}")
    print(
        f"  PostgreSQL {pg_version}, nats-server {version.major}.{version.minor}.{version.patch}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"request body {len(body) / 1024:,.0f} KiB"
    )


async def run(args: argparse.Namespace) -> None:
    """Set up, run the rounds, print the figures."""
    with servers(durable=not args.no_fsync) as where:
        name = f"crm_bench_{uuid.uuid4().hex[:10]}"
        url = await create_database(where.admin_url, name)
        nc = await nats.connect(where.nats_url)
        processes: Processes | None = None
        try:
            await asyncio.to_thread(upgrade, ROOT / "services" / "profile", url)
            js = nc.jetstream()
            await ensure_stream(js, "profile", NatsSettings(nats_url=where.nats_url))
            customer_ids = await create_customers(url, args.customers)
            if args.history:
                await store_history(url, args.history)
            await describe(url, nc, where.description, args)
            processes = start_service(url, where.nats_url)
            await wait_ready(processes.url)
            meter = CpuMeter(
                {
                    "bench client (HTTP or COPY)": [psutil.Process()],
                    "profile API": [psutil.Process(processes.api.pid)],
                    "profile worker (relay)": [psutil.Process(processes.worker.pid)],
                    **await local_processes(url, urlparse(where.nats_url).port),
                }
            )
            warmup = make_batches(args.warmup, args.batch_size, args.customers, seed=1)
            await intake_phase(
                processes.url, js, [orjson.dumps({"events": b}) for b in warmup], 1, meter
            )
            rounds = [
                await one_round(args, 10 * i, url, js, processes.url, meter, customer_ids)
                for i in range(1, args.rounds + 1)
            ]
            report(args.batches * args.batch_size, rounds)
        finally:
            if processes is not None:
                processes.stop()
            await nc.close()
            await drop_database(where.admin_url, name)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="COPY + intake rounds")
    parser.add_argument("--batches", type=int, default=200, help="batches per phase and round")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (≤ 1,000)")
    parser.add_argument(
        "--clients", type=int, default=4, help="concurrent HTTP clients / COPY connections"
    )
    parser.add_argument(
        "--customers", type=int, default=100_000, help="customers stored, named at random"
    )
    parser.add_argument(
        "--history", type=int, default=1_000_000, help="events stored before the rounds"
    )
    parser.add_argument("--warmup", type=int, default=5, help="batches sent before measuring")
    parser.add_argument(
        "--no-fsync", action="store_true", help="embedded PostgreSQL without fsync (as the tests)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
