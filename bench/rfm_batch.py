"""The RFM batch on a large shop, next to a plain ``GROUP BY customer`` of the same orders.

Set-up (not timed): a throw-away database with the segment schema, ``--customers`` active
customers (default 1,000,000) and ``--orders`` orders (default 10,000,000) spread over the last
two years with a skewed number of orders per customer, 3 % cancelled and 2 % fully refunded,
loaded with ``INSERT ... SELECT generate_series`` and analysed.

Measured, in the same run and on the same rows (``--rounds`` times, median reported):

1. Baseline: one plain aggregate of the orders per customer, what any RFM needs at least:
   ``SELECT customer, max(placed_at), count(*), sum(total_minor - refunded_minor) FROM order
   WHERE <qualifying, in the window> GROUP BY customer``, its result written to an unlogged
   table (the batch writes its result too).
2. The RFM batch exactly as the worker runs it (``crm_segment.rfm.jobs.run_rfm``): metrics,
   quantile scores with ties kept together, groups, lifetime aggregates and lifecycle written to
   ``customer_score``, boundaries stored, changed customers queued for re-evaluation, in one
   transaction. The first round writes every row; later rounds find most rows unchanged, as
   the daily run does; both are reported.

It prints seconds for each and the ratio batch / baseline (goal ≤ 2).

Embedded PostgreSQL (fsync on) unless ``DATABASE_URL`` is set; a database ``crm_bench_<hex>``
is created and dropped. Usage: ``.venv/bin/python bench/rfm_batch.py --customers 100000
--orders 1000000`` for a quick run, no arguments for the full size (≈10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from outbox_throughput import _plain, create_database, drop_database, servers
from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.db import Database
from crm_common.migrations import upgrade

ROOT = Path(__file__).resolve().parent.parent

LOAD = [
    """
    INSERT INTO segment.customer (customer_external_id, customer_id, root_external_id, status,
                                  country, registered_at, updated_at)
    SELECT 'c' || lpad(i::text, 8, '0'), gen_random_uuid(), 'c' || lpad(i::text, 8, '0'),
           'active', (ARRAY['DE','FR','NL','IT','ES'])[1 + i % 5],
           now() - make_interval(days => 800), now()
    FROM generate_series(1, $1::int) AS i
    """,
    # customer k gets a share of orders that falls off like 1/(1+k/1000): a few heavy buyers,
    # a long tail of one-time customers; times spread over 730 days
    """
    INSERT INTO segment."order" (order_external_id, order_id, customer_external_id,
                                 root_external_id, placed_at, currency, total_minor,
                                 discount_minor, refunded_minor, fully_refunded, status)
    SELECT 'o' || lpad(n::text, 9, '0'), gen_random_uuid(), c, c,
           $3::timestamptz - make_interval(secs => (random() * 730 * 86400)::int),
           'EUR', t, CASE WHEN n % 7 = 0 THEN t / 10 ELSE 0 END,
           CASE WHEN n % 50 = 1 THEN t WHEN n % 20 = 3 THEN t / 4 ELSE 0 END,
           n % 50 = 1,
           CASE WHEN n % 33 = 2 THEN 'cancelled' ELSE 'delivered' END
    FROM (
        SELECT n,
               'c' || lpad((1 + floor($1::int * power(random(), 3)))::int::text, 8, '0') AS c,
               (500 + floor(random() * 20000))::bigint AS t
        FROM generate_series(1, $2::int) AS n
    ) s
    """,
    "ANALYZE segment.customer",
    'ANALYZE segment."order"',
]

BASELINE = """
    CREATE UNLOGGED TABLE bench_baseline AS
    SELECT root_external_id, max(placed_at) AS last_order_at, count(*) AS frequency,
           sum(total_minor - refunded_minor) AS monetary_minor
    FROM segment."order"
    WHERE status <> 'cancelled' AND NOT fully_refunded
      AND placed_at >= $1::timestamptz AND placed_at < $2::timestamptz
    GROUP BY root_external_id
"""


async def load(url: str, customers: int, orders: int, now: datetime) -> float:
    """Create the customers and orders; seconds taken."""
    conn = await asyncpg.connect(_plain(url))
    try:
        start = time.perf_counter()
        await conn.execute(LOAD[0], customers)
        await conn.execute(LOAD[1], customers, orders, now)
        for statement in LOAD[2:]:
            await conn.execute(statement)
        return time.perf_counter() - start
    finally:
        await conn.close()


async def baseline(url: str, as_of: date, window_days: int) -> float:
    """Seconds for the plain GROUP BY into a table."""
    conn = await asyncpg.connect(_plain(url))
    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + _day()
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_baseline")
        start = time.perf_counter()
        await conn.execute(BASELINE, end - window_days * _day(), end)
        return time.perf_counter() - start
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_baseline")
        await conn.close()


def _day() -> timedelta:
    """One day."""
    return timedelta(days=1)


async def batch(database: Database, as_of: date, window_days: int) -> tuple[float, dict[str, Any]]:
    """Seconds for the RFM job as the worker runs it, and its result."""
    from crm_segment.rfm.jobs import run_rfm

    start = time.perf_counter()
    async with database.unit_of_work() as session:
        result = await run_rfm(session, {"as_of": as_of.isoformat(), "window_days": window_days})
    return time.perf_counter() - start, result


async def run(args: argparse.Namespace) -> None:
    """Set up, measure, print."""
    with servers(durable=not args.no_fsync) as where:
        name = f"crm_bench_{uuid.uuid4().hex[:10]}"
        url = await create_database(where.admin_url, name)
        engine = create_async_engine(url, pool_size=2)
        database = Database.from_engine(engine)
        try:
            await asyncio.to_thread(upgrade, ROOT / "services" / "segment", url)
            now = datetime.now(UTC)
            as_of = now.date()
            conn = await asyncpg.connect(_plain(url))
            version = await conn.fetchval("SHOW server_version")
            await conn.close()
            print(
                f"RFM batch: {args.customers:,} customers, {args.orders:,} orders, window "
                f"{args.window_days} days, {args.rounds} rounds\n  {where.description}\n"
                f"  PostgreSQL {version}, Python {platform.python_version()}, "
                f"{os.cpu_count()} CPUs"
            )
            loaded = await load(url, args.customers, args.orders, now)
            print(f"  load (not measured): {loaded:.1f} s")
            rows: list[tuple[float, float]] = []
            for i in range(args.rounds):
                base = await baseline(url, as_of, args.window_days)
                took, result = await batch(database, as_of, args.window_days)
                rows.append((base, took))
                print(
                    f"  round {i + 1}: GROUP BY {base:6.2f} s   RFM batch {took:6.2f} s   "
                    f"ratio {took / base:4.2f}   {result}"
                )
            first = rows[0]
            print(f"  first run (every row written): ratio {first[1] / first[0]:.2f}")
            if len(rows) > 1:
                later = rows[1:]
                ratio = statistics.median(t / b for b, t in later)
                print(f"  later runs (median; rows mostly unchanged): ratio {ratio:.2f} (goal ≤ 2)")
        finally:
            await engine.dispose()
            await drop_database(where.admin_url, name)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--window-days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-fsync", action="store_true", help="embedded PostgreSQL without fsync (as the tests)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
