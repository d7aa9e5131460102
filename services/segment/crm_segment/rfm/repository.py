"""SQL of RFM: one statement scores, groups, stages and writes a set of customers.

:func:`write_scores` is used by the daily batch (every customer, quantile or fixed-threshold
scoring) and by the evaluator's refresh (a batch of customers, scored against stored cuts). In
one pass over ``order`` it takes the lifetime aggregates and the window metrics, scores them,
names the group, computes the lifecycle stage, writes only the rows that changed, deletes the
rows of customers that are no longer active (merged duplicates) and, for the batch, queues the
customers whose group or stage changed (or whose row it deleted) for re-evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Double,
    Integer,
    Select,
    SmallInteger,
    Table,
    Text,
    and_,
    any_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import CTE

from crm_segment.evaluation.queue import enqueue_select
from crm_segment.lifecycle.stages import LifecycleRules, stage_expr
from crm_segment.models import Customer, CustomerScore, EvaluationQueue, Order, RfmBoundaries
from crm_segment.rfm.groups import group_expr
from crm_segment.rfm.scoring import METRICS, SCORES, Cuts, lower_is_better, score_expr

ORD: Table = Order.__table__  # type: ignore[assignment]
CUST: Table = Customer.__table__  # type: ignore[assignment]
SCORE: Table = CustomerScore.__table__  # type: ignore[assignment]
QUEUE: Table = EvaluationQueue.__table__  # type: ignore[assignment]

#: Columns of ``customer_score`` this part owns (CLV, value score and cluster are left alone).
WRITTEN = (
    "first_order_at",
    "last_order_at",
    "orders_count",
    "revenue_minor",
    "rfm_as_of",
    "recency_days",
    "frequency",
    "monetary_minor",
    "r",
    "f",
    "m",
    "rfm_score",
    "rfm_group",
    "lifecycle",
)
#: Columns that move every day for everybody (recency grows by one a day): a row is not
#: rewritten for them alone. While F and M stay put the last order in the window stays put,
#: so the current recency is the stored one plus the days since ``rfm_as_of``
#: (:func:`current_recency`); any other change rewrites the row with fresh values.
DAILY = ("rfm_as_of", "recency_days")
_METRIC_COLUMN = {"recency": "recency_days", "frequency": "frequency", "monetary": "monetary_minor"}
_SCORE_COLUMN = {"recency": "r", "frequency": "f", "monetary": "m"}


@dataclass(frozen=True)
class Window:
    """The RFM window: the ``days`` calendar days (UTC) ending with ``as_of``, both included."""

    as_of: date
    days: int

    @property
    def start(self) -> datetime:
        """First instant in the window: midnight UTC starting day ``as_of - (days - 1)``."""
        return datetime.combine(self.as_of - timedelta(days=self.days - 1), time(), UTC)

    @property
    def end(self) -> datetime:
        """First instant after the window: midnight UTC ending ``as_of``."""
        return datetime.combine(self.as_of + timedelta(days=1), time(), UTC)


@dataclass
class WriteResult:
    """What one :func:`write_scores` statement did."""

    scored: int = 0
    written: int = 0
    deleted: int = 0
    enqueued: int = 0
    #: metric -> score -> {"min", "max", "customers"} of the scored customers.
    stats: dict[str, dict[str, dict[str, int | None]]] = field(default_factory=dict)


def _ids_param(ids: Sequence[str]) -> ColumnElement[list[str]]:
    return literal(list(ids), ARRAY(Text))


def _midnight_utc(day: ColumnElement[Any]) -> ColumnElement[datetime]:
    """SQL: the first instant (UTC) of the date ``day`` (the SQL twin of :class:`Window`)."""
    return cast(func.timezone("UTC", cast(day, DateTime)), DateTime(timezone=True))


def _score_text(r: ColumnElement[Any], f: ColumnElement[Any], m: ColumnElement[Any]) -> Any:
    """SQL: the ``rfm_score`` of three scores, e.g. ``"543"`` (NULL when one is NULL)."""
    return cast(r, Text) + cast(f, Text) + cast(m, Text)


def _aggregates(window: Window, ids: Sequence[str] | None) -> CTE:
    """Per root customer: lifetime aggregates and window metrics of qualifying orders."""
    net = ORD.c.total_minor - ORD.c.refunded_minor
    in_window = and_(ORD.c.placed_at >= window.start, ORD.c.placed_at < window.end)
    stmt = (
        select(
            ORD.c.root_external_id.label("cid"),
            func.min(ORD.c.placed_at).label("first_order_at"),
            func.max(ORD.c.placed_at).label("last_order_at"),
            func.count().label("orders_count"),
            cast(func.sum(net), BigInteger).label("revenue_minor"),
            func.max(ORD.c.placed_at).filter(in_window).label("last_in_window"),
            func.count().filter(in_window).label("window_orders"),
            cast(func.sum(net).filter(in_window), BigInteger).label("window_net"),
        )
        .where(ORD.c.status != "cancelled", ORD.c.fully_refunded.is_(False))
        .group_by(ORD.c.root_external_id)
    )
    if ids is not None:
        stmt = stmt.where(ORD.c.root_external_id == any_(_ids_param(ids)))
    return stmt.cte("agg")


def _base(window: Window, ids: Sequence[str] | None) -> Select[Any]:
    """The customers to score with their metrics and their current score row (``old_cid``
    and ``old_<column>``).

    Scored: every active customer, every root with a qualifying order and every root that has
    a score row, except customers whose ``customer`` row is not active (merged duplicates).
    """
    agg = _aggregates(window, ids)
    old = SCORE.alias("old")
    cid: ColumnElement[str]
    if ids is None:
        source = agg.join(CUST, CUST.c.customer_external_id == agg.c.cid, full=True).join(
            old,
            old.c.customer_external_id == func.coalesce(agg.c.cid, CUST.c.customer_external_id),
            full=True,
        )
        cid = func.coalesce(agg.c.cid, CUST.c.customer_external_id, old.c.customer_external_id)
        known: ColumnElement[bool] = true()
    else:
        wanted = func.unnest(_ids_param(ids)).table_valued("cid").render_derived(name="wanted")
        cid = wanted.c.cid
        source = (
            wanted.outerjoin(CUST, CUST.c.customer_external_id == cid)
            .outerjoin(agg, agg.c.cid == cid)
            .outerjoin(old, old.c.customer_external_id == cid)
        )
        known = or_(
            CUST.c.customer_external_id.is_not(None),
            agg.c.cid.is_not(None),
            old.c.customer_external_id.is_not(None),
        )
    last_day = cast(func.timezone("UTC", agg.c.last_in_window), Date)
    return (
        select(
            cid.label("cid"),
            agg.c.first_order_at,
            agg.c.last_order_at,
            func.coalesce(agg.c.orders_count, 0).label("orders_count"),
            func.coalesce(agg.c.revenue_minor, 0).label("revenue_minor"),
            cast(literal(window.as_of, Date) - last_day, Integer).label("recency_days"),
            func.nullif(agg.c.window_orders, 0).label("frequency"),
            agg.c.window_net.label("monetary_minor"),
            old.c.customer_external_id.label("old_cid"),
            *(old.c[c].label(f"old_{c}") for c in (*WRITTEN, "lifecycle_changed_at")),
        )
        .select_from(source)
        .where(func.coalesce(CUST.c.status, "active") == "active", known)
    )


def _quantile(value: ColumnElement[Any], metric: str, has: ColumnElement[bool]) -> Any:
    """ceil(5 × cume_dist) among the customers with a score, fewer days better for recency."""
    order = value.desc() if metric == "recency" else value.asc()
    rank = func.cume_dist().over(partition_by=has, order_by=order)
    return case((has, cast(func.ceil(5 * rank), SmallInteger)), else_=null())


def _scored(
    window: Window,
    cuts: Cuts | None,
    ids: Sequence[str] | None,
    now: datetime,
    rules: LifecycleRules,
) -> CTE:
    """Metrics, scores (quantile when ``cuts`` is None), group and lifecycle stage."""
    base = _base(window, ids).subquery("base")
    has = base.c.frequency.is_not(None)
    scores = {
        _SCORE_COLUMN[m]: (
            _quantile(base.c[_METRIC_COLUMN[m]], m, has)
            if cuts is None
            else score_expr(base.c[_METRIC_COLUMN[m]], m, cuts)
        ).label(_SCORE_COLUMN[m])
        for m in METRICS
    }
    ranked = select(*base.c, *scores.values()).subquery("ranked")
    rfm_score = _score_text(ranked.c.r, ranked.c.f, ranked.c.m)
    # the current row's columns ride through the window sorts: joining the row again after
    # them (narrower sorts) costs one index probe per customer, several times the sorts' gain
    return (
        select(
            *ranked.c,
            case(
                (has_rfm := ranked.c.r.is_not(None), literal(window.as_of, Date)), else_=null()
            ).label("rfm_as_of"),
            case((has_rfm, rfm_score), else_=null()).label("rfm_score"),
            group_expr(ranked.c.r, ranked.c.f).label("rfm_group"),
            stage_expr(
                ranked.c.first_order_at, ranked.c.last_order_at, ranked.c.orders_count, now, rules
            ).label("lifecycle"),
        )
        .select_from(ranked)
        .cte("scored")
    )


def _stats_columns(scored: CTE) -> list[ColumnElement[Any]]:
    """min/max/count of each metric per score, labelled ``<metric>_<score>_<min|max|n>``."""
    out: list[ColumnElement[Any]] = []
    for m in METRICS:
        value, score = scored.c[_METRIC_COLUMN[m]], scored.c[_SCORE_COLUMN[m]]
        for s in SCORES:
            out += [
                func.min(value).filter(score == s).label(f"{m}_{s}_min"),
                func.max(value).filter(score == s).label(f"{m}_{s}_max"),
                func.count().filter(score == s).label(f"{m}_{s}_n"),
            ]
    return out


async def write_scores(
    session: AsyncSession,
    *,
    window: Window,
    now: datetime,
    rules: LifecycleRules,
    cuts: Cuts | None = None,
    ids: Sequence[str] | None = None,
    enqueue: bool = False,
) -> WriteResult:
    """Score ``ids`` (None: every customer) and write what changed, in one statement."""
    scored = _scored(window, cuts, ids, now, rules)
    old = {c: scored.c[f"old_{c}"] for c in (*WRITTEN, "lifecycle_changed_at")}
    changed_at = case(
        (old["lifecycle"].is_distinct_from(scored.c.lifecycle), literal(now)),
        else_=old["lifecycle_changed_at"],
    )
    compared = [c for c in WRITTEN if c not in DAILY]
    changed = tuple_(*(scored.c[c] for c in compared)).is_distinct_from(
        tuple_(*(old[c] for c in compared))
    )
    # new rows: an upsert (the evaluator may insert the same customer meanwhile)
    rows = select(scored.c.cid, *(scored.c[c] for c in WRITTEN), changed_at, literal(now)).where(
        scored.c.old_cid.is_(None)
    )
    ins = insert(SCORE).from_select(
        ["customer_external_id", *WRITTEN, "lifecycle_changed_at", "computed_at"], rows
    )
    inserted = (
        ins.on_conflict_do_update(
            index_elements=[SCORE.c.customer_external_id],
            set_={c: ins.excluded[c] for c in (*WRITTEN, "lifecycle_changed_at", "computed_at")},
        )
        .returning(SCORE.c.customer_external_id)
        .cte("inserted")
    )
    # existing rows whose values changed: a plain UPDATE joined to the scores, which spares
    # every row the upsert's speculative insertion and its index probe
    updated = (
        SCORE.update()
        .where(
            SCORE.c.customer_external_id == scored.c.old_cid,
            scored.c.old_cid.is_not(None),
            changed,
        )
        .values(
            {
                **{c: scored.c[c] for c in WRITTEN},
                "lifecycle_changed_at": changed_at,
                "computed_at": literal(now),
            }
        )
        .returning(SCORE.c.customer_external_id)
        .cte("updated")
    )
    # the only rows not scored are those of customers no longer active (merged duplicates)
    gone = and_(
        SCORE.c.customer_external_id == CUST.c.customer_external_id, CUST.c.status != "active"
    )
    if ids is not None:
        gone = and_(gone, SCORE.c.customer_external_id == any_(_ids_param(ids)))
    deleted = SCORE.delete().where(gone).returning(SCORE.c.customer_external_id).cte("deleted")
    counts = [
        (
            select(func.count()).select_from(inserted).scalar_subquery()
            + select(func.count()).select_from(updated).scalar_subquery()
        ).label("written"),
        select(func.count()).select_from(deleted).scalar_subquery().label("deleted"),
    ]
    if enqueue:
        moved = select(scored.c.cid).where(
            or_(
                old["rfm_group"].is_distinct_from(scored.c.rfm_group),
                old["lifecycle"].is_distinct_from(scored.c.lifecycle),
            )
        )
        due = union_all(moved, select(deleted.c.customer_external_id)).subquery("due")
        queued = (
            enqueue_select(select(due.c.cid, literal(now), literal("input")))
            .returning(QUEUE.c.customer_external_id)
            .cte("queued")
        )
        counts.append(select(func.count()).select_from(queued).scalar_subquery().label("queued"))
    stmt = select(
        func.count().filter(scored.c.r.is_not(None)).label("scored"),
        *_stats_columns(scored),
        *counts,
    ).select_from(scored)
    row = (await session.execute(stmt)).one()._mapping
    return WriteResult(
        scored=row["scored"],
        written=row["written"],
        deleted=row["deleted"],
        enqueued=row["queued"] if enqueue else 0,
        stats={
            m: {str(s): {k: row[f"{m}_{s}_{k}"] for k in ("min", "max", "n")} for s in SCORES}
            for m in METRICS
        },
    )


async def changed_since(session: AsyncSession, previous: Window, window: Window) -> list[str]:
    """The customers to recompute from their orders when every stored row was exact for the
    ``previous`` batch's window (same length, ending no later than ``window``): those queued
    for re-evaluation because an input changed (or whose scheduled re-evaluation is due) and
    not re-evaluated yet, and those with an order entering the window in between that their
    row does not count yet (placed after the end of the row's window: an order dated ahead of
    its arrival).

    Orders that leave the window are handled by :func:`drop_left_orders`.
    """
    placed = ORD.c.placed_at
    # an order placed after the end of the window a row was computed for is not in it (an
    # order that arrived after the row was written queued its customer)
    row_end = _midnight_utc(SCORE.c.rfm_as_of + 1)
    entering = (
        select(ORD.c.root_external_id)
        .outerjoin(SCORE, SCORE.c.customer_external_id == ORD.c.root_external_id)
        .where(
            placed >= previous.end,
            placed < window.end,
            or_(SCORE.c.rfm_as_of.is_(None), placed >= row_end),
        )
    )
    queued = select(QUEUE.c.customer_external_id).where(
        or_(QUEUE.c.reason != "scheduled", QUEUE.c.due_at <= func.clock_timestamp())
    )
    return list((await session.execute(entering.union(queued))).scalars())


async def drop_left_orders(
    session: AsyncSession,
    *,
    previous: Window,
    window: Window,
    now: datetime,
    skip: Sequence[str],
) -> int:
    """Take the qualifying orders that left the window since ``previous`` out of their
    customers' stored metrics (but those in ``skip``, recomputed from their orders); the rows
    written.

    Exact because a stored row is exact for the window ending at its ``rfm_as_of`` as long as
    its customer is not queued: any change to the customer's orders queues it, so the orders
    in that window are still those the row counted, and an order that leaves it is one of
    them. The orders that left are the oldest: the last order in the window, and so recency,
    stays (unless none is left: no RFM). Lifetime figures do not move. One index range of the
    orders placed in the days the window moved over, not the customers' whole histories.
    """
    row_start = _midnight_utc(SCORE.c.rfm_as_of - (window.days - 1))
    net = ORD.c.total_minor - ORD.c.refunded_minor
    skipped = func.unnest(_ids_param(skip)).table_valued("cid").render_derived(name="skipped")
    left = (
        select(
            ORD.c.root_external_id.label("cid"),
            func.count().label("orders"),
            cast(func.sum(net), BigInteger).label("net"),
        )
        .join(SCORE, SCORE.c.customer_external_id == ORD.c.root_external_id)
        .where(
            ORD.c.placed_at >= previous.start,
            ORD.c.placed_at < window.start,
            ORD.c.placed_at >= row_start,
            ORD.c.status != "cancelled",
            ORD.c.fully_refunded.is_(False),
            SCORE.c.frequency.is_not(None),
            ~select(skipped.c.cid).where(skipped.c.cid == ORD.c.root_external_id).exists(),
        )
        .group_by(ORD.c.root_external_id)
        .subquery("left_window")
    )
    remaining = SCORE.c.frequency - left.c.orders
    kept = remaining > 0
    stmt = (
        SCORE.update()
        .where(SCORE.c.customer_external_id == left.c.cid)
        .values(
            frequency=func.nullif(remaining, 0),
            monetary_minor=case((kept, SCORE.c.monetary_minor - left.c.net), else_=null()),
            recency_days=case((kept, current_recency(window.as_of)), else_=null()),
            rfm_as_of=case((kept, literal(window.as_of, Date)), else_=null()),
            computed_at=literal(now),
        )
    )
    return (await session.execute(stmt)).rowcount  # type: ignore[attr-defined,no-any-return]


def _current_metrics(as_of: date) -> CTE:
    """Every scored row's metrics as of ``as_of`` (recency from :func:`current_recency`)."""
    return (
        select(
            current_recency(as_of).label("recency"),
            SCORE.c.frequency.label("frequency"),
            SCORE.c.monetary_minor.label("monetary"),
        )
        .where(SCORE.c.frequency.is_not(None))
        .cte("metrics")
    )


async def current_stats(
    session: AsyncSession, as_of: date, cuts: Cuts | None
) -> tuple[int, dict[str, dict[str, dict[str, int | None]]]]:
    """The number of customers with an RFM score in the stored rows and, per metric and
    score, the min/max value and the customers (the ``stats`` of :class:`WriteResult`), with
    scores by quantile (``cuts`` None) or against ``cuts``.

    The quantiles are exactly those of ``cume_dist()`` over the customers, from one count per
    distinct value: the share of customers whose value is as bad as or worse than a value is
    the running sum of the counts up to it over the total, as ``cume_dist`` computes it (ties
    at their highest rank), so ``ceil(5 × share)`` is each customer's score without sorting
    the customers.
    """
    metrics = _current_metrics(as_of)
    total = select(func.count()).select_from(metrics).scalar_subquery()
    parts = []
    for m in METRICS:
        counts = (
            select(metrics.c[m].label("v"), func.count().label("c"))
            .group_by(metrics.c[m])
            .subquery(f"{m}_counts")
        )
        if cuts is None:
            order = counts.c.v.desc() if lower_is_better(m) else counts.c.v.asc()
            running = cast(func.sum(counts.c.c).over(order_by=order), Double)
            share = running / cast(total, Double)
            score: ColumnElement[Any] = cast(func.ceil(5 * share), SmallInteger)
        else:
            score = score_expr(counts.c.v, m, cuts)
        scored = select(counts.c.v, counts.c.c, score.label("s")).subquery(f"{m}_scored")
        parts.append(
            select(
                literal(m).label("metric"),
                scored.c.s,
                cast(func.min(scored.c.v), BigInteger).label("min"),
                cast(func.max(scored.c.v), BigInteger).label("max"),
                cast(func.sum(scored.c.c), BigInteger).label("n"),
            ).group_by(scored.c.s)
        )
    found = {(r.metric, r.s): r for r in (await session.execute(union_all(*parts))).all()}
    empty: dict[str, int | None] = {"min": None, "max": None, "n": 0}
    stats: dict[str, dict[str, dict[str, int | None]]] = {
        m: {
            str(s): (
                {"min": int(r.min), "max": int(r.max), "n": int(r.n)}
                if (r := found.get((m, s)))
                else dict(empty)
            )
            for s in SCORES
        }
        for m in METRICS
    }
    scored_customers = sum(v["n"] or 0 for v in stats["frequency"].values())
    return scored_customers, stats


async def rescore(
    session: AsyncSession,
    *,
    window: Window,
    now: datetime,
    rules: LifecycleRules,
    cuts: Cuts,
) -> WriteResult:
    """Score every stored row's metrics as of ``window.as_of`` against ``cuts``, restage it at
    ``now``, and write the rows whose scores, group or stage changed (a rewritten row's
    recency is brought to ``as_of``); queue those whose group or stage changed. One pass over
    ``customer_score``, no order read: the metrics must be exact (see :func:`changed_since`).
    """
    recency = current_recency(window.as_of)
    has = SCORE.c.frequency.is_not(None)
    new = {
        "r": score_expr(recency, "recency", cuts),
        "f": score_expr(SCORE.c.frequency, "frequency", cuts),
        "m": score_expr(SCORE.c.monetary_minor, "monetary", cuts),
    }
    calc = select(
        SCORE.c.customer_external_id.label("cid"),
        case((has, recency), else_=null()).label("recency_days"),
        *(case((has, v), else_=null()).label(k) for k, v in new.items()),
        stage_expr(
            SCORE.c.first_order_at, SCORE.c.last_order_at, SCORE.c.orders_count, now, rules
        ).label("lifecycle"),
        *(SCORE.c[c].label(f"old_{c}") for c in ("r", "f", "m", "rfm_group", "lifecycle")),
        SCORE.c.lifecycle_changed_at.label("old_lifecycle_changed_at"),
    ).subquery("calc")
    group = group_expr(calc.c.r, calc.c.f)
    changed = (
        select(
            *calc.c,
            group.label("rfm_group"),
            _score_text(calc.c.r, calc.c.f, calc.c.m).label("rfm_score"),
        )
        .where(
            tuple_(calc.c.r, calc.c.f, calc.c.m, group, calc.c.lifecycle).is_distinct_from(
                tuple_(
                    calc.c.old_r,
                    calc.c.old_f,
                    calc.c.old_m,
                    calc.c.old_rfm_group,
                    calc.c.old_lifecycle,
                )
            )
        )
        .cte("changed")
    )
    stage_moved = changed.c.old_lifecycle.is_distinct_from(changed.c.lifecycle)
    updated = (
        SCORE.update()
        .where(SCORE.c.customer_external_id == changed.c.cid)
        .values(
            rfm_as_of=case((changed.c.r.is_not(None), literal(window.as_of, Date)), else_=null()),
            recency_days=changed.c.recency_days,
            r=changed.c.r,
            f=changed.c.f,
            m=changed.c.m,
            rfm_score=changed.c.rfm_score,
            rfm_group=changed.c.rfm_group,
            lifecycle=changed.c.lifecycle,
            lifecycle_changed_at=case(
                (stage_moved, literal(now)), else_=changed.c.old_lifecycle_changed_at
            ),
            computed_at=literal(now),
        )
        .returning(SCORE.c.customer_external_id)
        .cte("updated")
    )
    moved = select(changed.c.cid, literal(now), literal("input")).where(
        or_(changed.c.old_rfm_group.is_distinct_from(changed.c.rfm_group), stage_moved)
    )
    queued = enqueue_select(moved).returning(QUEUE.c.customer_external_id).cte("queued")
    stmt = select(
        select(func.count()).select_from(updated).scalar_subquery().label("written"),
        select(func.count()).select_from(queued).scalar_subquery().label("queued"),
    )
    row = (await session.execute(stmt)).one()
    return WriteResult(written=row.written, enqueued=row.queued)


async def set_work_mem(session: AsyncSession, work_mem: str) -> None:
    """Give the rest of the transaction ``work_mem`` (hash aggregates and sorts in memory)."""
    await session.execute(select(func.set_config("work_mem", work_mem, True)))


async def save_boundaries(
    session: AsyncSession,
    *,
    window: Window,
    method: str,
    boundaries: dict[str, Any],
    customers: int,
    now: datetime,
) -> None:
    """Replace the stored boundaries with this batch's."""
    values = {
        "as_of": window.as_of,
        "window_days": window.days,
        "method": method,
        "boundaries": boundaries,
        "customers": customers,
        "computed_at": now,
    }
    ins = insert(RfmBoundaries).values(id=1, **values)
    await session.execute(ins.on_conflict_do_update(index_elements=["id"], set_=values))


async def load_boundaries(session: AsyncSession) -> RfmBoundaries | None:
    """The boundaries of the last batch, if any."""
    return await session.get(RfmBoundaries, 1, populate_existing=True)


def current_recency(as_of: Any) -> ColumnElement[Any]:
    """A score row's recency as of ``as_of`` (a date expression): the stored value plus the
    days since it was computed (never less than stored)."""
    as_of = as_of if isinstance(as_of, ColumnElement) else literal(as_of, Date)
    elapsed = func.greatest(func.coalesce(as_of - SCORE.c.rfm_as_of, 0), 0)
    return SCORE.c.recency_days + elapsed


async def group_rows(session: AsyncSession) -> Sequence[Any]:
    """Per RFM group: customers, revenue and average metrics and scores (recency as of the
    latest computation)."""
    latest = select(func.max(SCORE.c.rfm_as_of)).scalar_subquery()
    stmt = (
        select(
            SCORE.c.rfm_group.label("group"),
            func.count().label("customers"),
            cast(func.sum(SCORE.c.monetary_minor), BigInteger).label("revenue_minor"),
            cast(func.avg(current_recency(latest)), Double).label("avg_recency_days"),
            cast(func.avg(SCORE.c.frequency), Double).label("avg_frequency"),
            cast(func.avg(SCORE.c.monetary_minor), Double).label("avg_monetary_minor"),
            cast(func.avg(SCORE.c.r), Double).label("avg_r"),
            cast(func.avg(SCORE.c.f), Double).label("avg_f"),
            cast(func.avg(SCORE.c.m), Double).label("avg_m"),
        )
        .where(SCORE.c.rfm_group.is_not(None))
        .group_by(SCORE.c.rfm_group)
    )
    return (await session.execute(stmt)).all()


async def top_revenue(session: AsyncSession, share: float) -> tuple[int, int]:
    """(revenue of all scored customers, revenue of the top ``share`` of them by monetary).

    The top is the ``ceil(share × n)`` customers with the highest monetary value; customers
    tied at the edge have equal values, so which of them is counted does not change the sum.
    """
    ranked = (
        select(
            SCORE.c.monetary_minor,
            func.row_number().over(order_by=SCORE.c.monetary_minor.desc()).label("rn"),
            func.count().over().label("n"),
        )
        .where(SCORE.c.rfm_group.is_not(None))
        .subquery("ranked")
    )
    stmt = select(
        func.coalesce(cast(func.sum(ranked.c.monetary_minor), BigInteger), 0),
        func.coalesce(
            cast(
                func.sum(ranked.c.monetary_minor).filter(
                    ranked.c.rn <= func.ceil(ranked.c.n * share)
                ),
                BigInteger,
            ),
            0,
        ),
    )
    total, top = (await session.execute(stmt)).one()
    return int(total), int(top)
