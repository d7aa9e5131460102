"""The RFM batch on a large shop, next to a plain ``GROUP BY customer`` of the same orders.

Set-up (not timed): a throw-away database with the segment schema, ``--customers`` active
customers (default 1,000,000) and ``--orders`` orders (default 10,000,000) spread over the last
two years with a skewed number of orders per customer, 3 % cancelled and 2 % fully refunded,
loaded with ``INSERT ... SELECT generate_series`` and analysed.

Measured, in the same run and on the same rows, ``--rounds`` daily runs: the first (every row
is written), then "day +1", "day +2", ... (``as_of`` and the clock one day later each time, as
the scheduled daily run: every recency grows by a day). Before each next-day run (not timed) a
day of the shop happens: a 730th of the orders arrive (placed during the day), a tenth as many
older orders are cancelled or refunded, and their customers are queued for re-evaluation as
the projections queue them; then the evaluator's refresh (``crm_segment.scores.service.
refresh_customers``, as the worker runs it within seconds of each change) processes them, in
batches, and the queue is emptied. With ``--unprocessed`` they stay queued, the worst case for
the batch, which must then recompute them from their orders itself.

1. Baseline: one plain aggregate of the orders per customer, what any RFM needs at least:
   ``SELECT customer, max(placed_at), count(*), sum(total_minor - refunded_minor) FROM order
   WHERE <qualifying, in the window> GROUP BY customer``, its result written to an unlogged
   table (the batch writes its result too).
2. The RFM job exactly as the worker runs it (``crm_segment.rfm.jobs.run_rfm``, i.e.
   ``crm_segment.rfm.service.recompute`` with ``full=False``: the first run is full, the next
   ones incremental), in one transaction, with its parts timed: **RFM** (every statement of
   ``crm_segment.rfm.repository`` the run makes: metrics, quantile scores with ties kept
   together, groups, lifetime aggregates and lifecycle written to ``customer_score``, changed
   customers queued for re-evaluation, boundaries stored), the CLV predictions of everybody
   (stand-in BG/NBD and Gamma-Gamma fits are stored first, so they run) and the value score of
   everybody; and the whole job, commit included.

It prints seconds for each and the ratios RFM / baseline and job / baseline (goal ≤ 2), for
the first run and the median of the next-day runs.

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
    "SELECT customer_external_id FROM segment.evaluation_queue ORDER BY 1",
]

#: A day of the shop before a next-day run: new orders placed during the day ($2 of them, for
#: customers drawn like the load's), older orders cancelled or refunded ($3), their customers
#: queued as the projections queue them. $1 customers, $4 the day's end (the run's clock).
DAY = [
    "DELETE FROM segment.evaluation_queue",
    """
    WITH new AS (
        INSERT INTO segment."order" (order_external_id, order_id, customer_external_id,
                                     root_external_id, placed_at, currency, total_minor,
                                     discount_minor, refunded_minor, fully_refunded, status)
        SELECT 'o' || gen_random_uuid(), gen_random_uuid(), c, c,
               $4::timestamptz - make_interval(secs => (random() * 86400)::int),
               'EUR', (500 + floor(random() * 20000))::bigint, 0, 0, false, 'paid'
        FROM (
            SELECT 'c' || lpad((1 + floor($1::int * power(random(), 3)))::int::text, 8, '0') AS c
            FROM generate_series(1, $2::int)
        ) s
        RETURNING root_external_id
    ),
    picked AS (
        SELECT order_external_id FROM segment."order" TABLESAMPLE SYSTEM (1)
        WHERE status <> 'cancelled' AND NOT fully_refunded LIMIT $3::int
    ),
    changed AS (
        UPDATE segment."order" o
        SET status = CASE WHEN random() < 0.5 THEN 'cancelled' ELSE o.status END,
            refunded_minor = o.total_minor / 2
        FROM picked WHERE o.order_external_id = picked.order_external_id
        RETURNING o.root_external_id
    )
    INSERT INTO segment.evaluation_queue (customer_external_id, due_at, reason)
    SELECT DISTINCT id, $4::timestamptz, 'input'
    FROM (SELECT root_external_id FROM new UNION SELECT root_external_id FROM changed) AS t(id)
    ON CONFLICT DO NOTHING
    """,
    'ANALYZE segment."order"',
    "SELECT customer_external_id FROM segment.evaluation_queue ORDER BY 1",
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


async def shop_day(
    url: str, database: Database, customers: int, orders: int, end: datetime, process: bool
) -> int:
    """A day of the shop (see ``DAY``) ending at ``end``, its queue processed by the
    evaluator's refresh unless ``process`` is false; the customers queued."""
    from crm_segment.scores.service import refresh_customers

    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(DAY[0])
        status = await conn.execute(DAY[1], customers, orders // 730, orders // 7300, end)
        await conn.execute(DAY[2])
        queued = [r[0] for r in await conn.fetch(DAY[3])]
    finally:
        await conn.close()
    if process:
        for start in range(0, len(queued), 1000):
            async with database.unit_of_work() as session:
                await refresh_customers(session, queued[start : start + 1000], end)
        conn = await asyncpg.connect(_plain(url))
        try:
            await conn.execute(DAY[0])
        finally:
            await conn.close()
    return int(status.split()[-1])


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
    #: Every statement of ``crm_segment.rfm.repository`` the run makes.
    rfm: float = 0.0
    #: Customers queued by the day before the run (see ``DAY``).
    queued_before: int = 0
    #: ``crm_segment.clv.service.predict_customers(None)``.
    predictions: float = 0.0
    #: ``crm_segment.value.service.score_customers(None)``.
    value: float = 0.0
    #: The whole job, commit included.
    job: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    #: Seconds per ``crm_segment.rfm.repository`` function.
    parts: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        """The run as one report line."""
        r = self.result
        return (
            f"  {self.label:<10} GROUP BY {self.baseline:6.2f} s | RFM "
            f"{self.rfm:6.2f} s (×{self.rfm / self.baseline:4.2f}) | predictions "
            f"{self.predictions:6.2f} s | value score {self.value:6.2f} s | whole job "
            f"{self.job:6.2f} s (×{self.job / self.baseline:4.2f})\n"
            f"  {'':<10} {'full' if r['full'] else 'incremental'}: the day queued "
            f"{self.queued_before:,}; recomputed from orders {r['customers_recomputed']:,}, "
            f"adjusted for orders leaving the window {r['customers_adjusted']:,}; "
            f"rows written: RFM {r['rows_written']:,}, value {r['value_scored']:,}; "
            f"queued {r['enqueued']:,}; predicted {r['clv_predicted']:,}\n"
            f"  {'':<10} RFM parts: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in self.parts.items() if v >= 0.005)
        )


def timed(run: Run, attribute: str, function: Callable[..., Awaitable[Any]]) -> Any:
    """``function`` adding its seconds to ``run.<attribute>`` (and, for RFM, its part)."""

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            took = time.perf_counter() - start
            setattr(run, attribute, getattr(run, attribute) + took)
            if attribute == "rfm":
                name = function.__name__
                run.parts[name] = run.parts.get(name, 0.0) + took

    return wrapper


async def batch(database: Database, run: Run, as_of: date, window_days: int, now: datetime) -> None:
    """The RFM job as the worker runs it (``run_rfm`` = ``recompute`` with the clock's
    ``now``; here ``now`` moves with ``as_of``), its parts timed."""
    from crm_segment.clv import service as clv_service
    from crm_segment.rfm import repository, service
    from crm_segment.value import service as value_service

    patches = [
        *(
            (repository, name, "rfm")
            for name in (
                "load_boundaries",
                "set_work_mem",
                "write_scores",
                "changed_since",
                "drop_left_orders",
                "current_stats",
                "rescore",
                "save_boundaries",
            )
        ),
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
                if i:
                    current.queued_before = await shop_day(
                        url,
                        database,
                        args.customers,
                        args.orders,
                        now + day,
                        not args.unprocessed,
                    )
                current.baseline = await baseline(url, as_of + day, args.window_days)
                await batch(database, current, as_of + day, args.window_days, now + day)
                runs.append(current)
                print(current.line(), flush=True)
            first = runs[0]
            print(
                f"  first run (full, every row written): RFM ×{first.rfm / first.baseline:.2f}, "
                f"whole job ×{first.job / first.baseline:.2f}"
            )
            if len(runs) > 1:
                later = runs[1:]
                rfm = statistics.median(r.rfm / r.baseline for r in later)
                job = statistics.median(r.job / r.baseline for r in later)
                print(
                    f"  next-day runs (median of {len(later)}): RFM ×{rfm:.2f}, "
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
        "--unprocessed",
        action="store_true",
        help="leave the day's queued customers to the batch (the evaluator did not run)",
    )
    parser.add_argument(
        "--no-fsync", action="store_true", help="embedded PostgreSQL without fsync (as the tests)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
