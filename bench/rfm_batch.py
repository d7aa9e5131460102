"""The RFM batch on a large shop, next to a plain ``GROUP BY customer`` of the same orders.

Set-up (not timed): a throw-away database with the segment schema, ``--customers`` active
customers (default 1,000,000) and ``--orders`` orders (default 10,000,000) spread over the last
two years with a skewed number of orders per customer, 3 % cancelled and 2 % fully refunded,
loaded with ``INSERT ... SELECT generate_series`` and analysed.

Measured, in the same run and on the same rows, ``--rounds`` daily runs: the first (every row
is written), then "day +1", "day +2", ... (``as_of`` and the clock one day later each time, as
the scheduled daily run: every recency grows by a day, so RFM metrics change for everyone):

1. Baseline: one plain aggregate of the orders per customer, what any RFM needs at least:
   ``SELECT customer, max(placed_at), count(*), sum(total_minor - refunded_minor) FROM order
   WHERE <qualifying, in the window> GROUP BY customer``, its result written to an unlogged
   table (the batch writes its result too).
2. The RFM job exactly as the worker runs it (``crm_segment.rfm.jobs.run_rfm``, i.e.
   ``crm_segment.rfm.service.recompute``), in one transaction, with its parts timed:
   the RFM statement (``crm_segment.rfm.repository.write_scores``: metrics, quantile scores
   with ties kept together, groups, lifetime aggregates and lifecycle written to
   ``customer_score``, changed customers queued for re-evaluation), the CLV predictions of
   everybody (stand-in BG/NBD and Gamma-Gamma fits are stored first, so they run) and the
   value score of everybody; and the whole job, commit included.

It prints seconds for each and the ratios statement / baseline and job / baseline (goal ≤ 2),
for the first run and the median of the next-day runs.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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


#: Stand-in model fits (the CDNOW estimates of the BG/NBD and Gamma-Gamma papers, money in
#: minor units) so that the job predicts CLV for everybody, as it does in a shop that has fitted.
FITS = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "gamma": 1544.0},
}


async def add_fits(database: Database, now: datetime) -> None:
    """Store the stand-in fits (not measured)."""
    from crm_segment.clv import repository as clv_repository

    async with database.unit_of_work() as session:
        for kind, params in FITS.items():
            await clv_repository.add_fit(
                session, kind, dict(params), {"bench": True}, 0, now - timedelta(days=1)
            )


@dataclass
class Run:
    """One daily run: the plain GROUP BY, then the RFM job with its parts timed."""

    label: str
    baseline: float = 0.0
    #: The one RFM statement (``crm_segment.rfm.repository.write_scores``).
    statement: float = 0.0
    #: ``crm_segment.clv.service.predict_customers(None)``.
    predictions: float = 0.0
    #: ``crm_segment.value.service.score_customers(None)``.
    value: float = 0.0
    #: The whole job, commit included.
    job: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The run as one report line."""
        r = self.result
        return (
            f"  {self.label:<10} GROUP BY {self.baseline:6.2f} s | RFM statement "
            f"{self.statement:6.2f} s (×{self.statement / self.baseline:4.2f}) | predictions "
            f"{self.predictions:6.2f} s | value score {self.value:6.2f} s | whole job "
            f"{self.job:6.2f} s (×{self.job / self.baseline:4.2f})\n"
            f"  {'':<10} rows written: RFM {r['rows_written']:,}, value {r['value_scored']:,}; "
            f"queued {r['enqueued']:,}; predicted {r['clv_predicted']:,}"
        )


def timed(run: Run, attribute: str, function: Callable[..., Awaitable[Any]]) -> Any:
    """``function`` adding its seconds to ``run.<attribute>``."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            setattr(run, attribute, getattr(run, attribute) + time.perf_counter() - start)

    return wrapper


async def batch(database: Database, run: Run, as_of: date, window_days: int, now: datetime) -> None:
    """The RFM job as the worker runs it (``run_rfm`` = ``recompute`` with the clock's
    ``now``; here ``now`` moves with ``as_of``), its parts timed."""
    from crm_segment.clv import service as clv_service
    from crm_segment.rfm import repository, service
    from crm_segment.value import service as value_service

    patches = [
        (repository, "write_scores", "statement"),
        (clv_service, "predict_customers", "predictions"),
        (value_service, "score_customers", "value"),
    ]
    originals = [getattr(module, name) for module, name, _ in patches]
    for module, name, attribute in patches:
        setattr(module, name, timed(run, attribute, getattr(module, name)))
    try:
        start = time.perf_counter()
        async with database.unit_of_work() as session:
            # as the daily schedule queues it: full=False (the first run is full anyway,
            # since no batch ran before it)
            run.result = await service.recompute(
                session, as_of=as_of, window_days=window_days, now=now, full=False
            )
        run.job = time.perf_counter() - start
    finally:
        for (module, name, _), original in zip(patches, originals, strict=True):
            setattr(module, name, original)


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
                f"{args.window_days} days, {args.rounds} runs\n  {where.description}\n"
                f"  PostgreSQL {version}, Python {platform.python_version()}, "
                f"{os.cpu_count()} CPUs",
                flush=True,
            )
            loaded = await load(url, args.customers, args.orders, now)
            await add_fits(database, now)
            print(f"  load (not measured): {loaded:.1f} s", flush=True)
            runs: list[Run] = []
            for i in range(args.rounds):
                day = timedelta(days=i)
                current = Run("first run" if i == 0 else f"day +{i}")
                current.baseline = await baseline(url, as_of + day, args.window_days)
                await batch(database, current, as_of + day, args.window_days, now + day)
                runs.append(current)
                print(current.line(), flush=True)
            first = runs[0]
            print(
                f"  first run (every row written): RFM statement "
                f"×{first.statement / first.baseline:.2f}, whole job ×{first.job / first.baseline:.2f}"
            )
            if len(runs) > 1:
                later = runs[1:]
                statement = statistics.median(r.statement / r.baseline for r in later)
                job = statistics.median(r.job / r.baseline for r in later)
                print(
                    f"  next-day runs (median of {len(later)}): RFM statement ×{statement:.2f}, "
                    f"whole job ×{job:.2f} (goal ≤ 2)"
                )
        finally:
            await engine.dispose()
            await drop_database(where.admin_url, name)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--window-days", type=int, default=365)
    parser.add_argument(
        "--rounds", type=int, default=3, help="daily runs: the first, then day +1, +2, ..."
    )
    parser.add_argument(
        "--no-fsync", action="store_true", help="embedded PostgreSQL without fsync (as the tests)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
