"""SQL of the KPIs: one statement, periods from ``generate_series``, each KPI a LEFT JOIN.

Timestamps are bucketed in UTC with ``date_trunc(granularity, ...)`` (weeks start on Monday);
the first and last periods are clipped to the range asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Double,
    Interval,
    Table,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnElement

from crm_segment.models import CustomerScore, InteractionDaily, Order

ORD: Table = Order.__table__  # type: ignore[assignment]
SCORE: Table = CustomerScore.__table__  # type: ignore[assignment]
DAILY: Table = InteractionDaily.__table__  # type: ignore[assignment]
COMPLAINT = "complaint_filed"


#: One bound "UTC" shared by every use, so that equal expressions render equal (GROUP BY).
_UTC_NAME = literal("UTC")


def _utc(column: ColumnElement[datetime]) -> ColumnElement[datetime]:
    """A ``timestamptz`` as UTC wall time (``timestamp``)."""
    return func.timezone(_UTC_NAME, column)


async def kpis(
    session: AsyncSession,
    *,
    start: date,
    end: date,
    granularity: str,
    churned_days: int,
    now: datetime,
) -> Sequence[Any]:
    """One row per period from ``start`` to ``end`` (both included), oldest first."""
    lo, hi = datetime.combine(start, time()), datetime.combine(end + timedelta(days=1), time())
    lo_utc, hi_utc = lo.replace(tzinfo=UTC), hi.replace(tzinfo=UTC)
    step = cast(literal(f"1 {granularity}"), Interval)
    gs = (
        func.generate_series(
            func.date_trunc(literal(granularity), lo), datetime.combine(end, time()), step
        )
        .table_valued("bucket")
        .render_derived(name="gs")
    )
    periods = select(
        gs.c.bucket,
        func.greatest(gs.c.bucket, lo).label("p_start"),
        func.least(gs.c.bucket + step, hi).label("p_end"),
    ).cte("periods")

    unit = literal(granularity)  # one bind param: equal date_trunc()s render equal

    def bucket(ts: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.date_trunc(unit, ts)

    qualifying = ORD.c.fully_refunded.is_(False)
    net = ORD.c.total_minor - ORD.c.refunded_minor
    placed = (
        select(
            ORD.c.root_external_id.label("cid"),
            bucket(_utc(ORD.c.placed_at)).label("bucket"),
            qualifying.label("q"),
            net.label("net"),
            ORD.c.total_minor,
            ORD.c.refunded_minor,
        )
        .where(ORD.c.status != "cancelled", ORD.c.placed_at >= lo_utc, ORD.c.placed_at < hi_utc)
        .cte("placed")
    )
    money = (
        select(
            placed.c.bucket,
            func.count().filter(placed.c.q).label("orders"),
            cast(func.sum(placed.c.net).filter(placed.c.q), BigInteger).label("revenue"),
            cast(func.sum(placed.c.refunded_minor), BigInteger).label("refunded"),
            cast(func.sum(placed.c.total_minor), BigInteger).label("gross"),
        )
        .group_by(placed.c.bucket)
        .subquery("money")
    )
    active = (
        select(placed.c.bucket, placed.c.cid, func.count().label("n"))
        .where(placed.c.q)
        .group_by(placed.c.bucket, placed.c.cid)
        .cte("active")
    )
    firsts = (
        select(ORD.c.root_external_id.label("cid"), func.min(ORD.c.placed_at).label("first_at"))
        .where(
            ORD.c.status != "cancelled",
            qualifying,
            ORD.c.placed_at < hi_utc,
            ORD.c.root_external_id.in_(select(active.c.cid)),
        )
        .group_by(ORD.c.root_external_id)
        .subquery("firsts")
    )
    first_utc = _utc(firsts.c.first_at)
    customers = (
        select(
            active.c.bucket,
            func.count().label("active"),
            func.count().filter(first_utc >= periods.c.p_start).label("new"),
            func.count()
            .filter(or_(active.c.n >= 2, first_utc < periods.c.p_start))
            .label("repeaters"),
            cast(func.avg(SCORE.c.clv_12m_minor), Double).label("avg_clv"),
        )
        .select_from(
            active.join(periods, periods.c.bucket == active.c.bucket)
            .join(firsts, firsts.c.cid == active.c.cid)
            .outerjoin(SCORE, SCORE.c.customer_external_id == active.c.cid)
        )
        .group_by(active.c.bucket)
        .subquery("customers")
    )
    churn_window = timedelta(days=churned_days)
    later = (
        select(
            ORD.c.root_external_id.label("cid"),
            ORD.c.placed_at,
            func.lead(ORD.c.placed_at)
            .over(partition_by=ORD.c.root_external_id, order_by=ORD.c.placed_at)
            .label("next_at"),
        )
        .where(
            ORD.c.status != "cancelled",
            qualifying,
            ORD.c.placed_at >= lo_utc - churn_window,
        )
        .subquery("later")
    )
    churn_at = later.c.placed_at + churn_window
    churn_bucket = bucket(_utc(churn_at))
    churned = (
        select(
            churn_bucket.label("bucket"),
            func.count(func.distinct(later.c.cid)).label("churned"),
        )
        .where(
            churn_at >= lo_utc,
            churn_at < hi_utc,
            churn_at <= now,
            or_(later.c.next_at.is_(None), later.c.next_at > churn_at),
        )
        .group_by(churn_bucket)
        .subquery("churned")
    )
    day_bucket = bucket(cast(DAILY.c.day, DateTime))
    complaints = (
        select(
            day_bucket.label("bucket"),
            cast(func.sum(DAILY.c.count), BigInteger).label("complaints"),
        )
        .where(DAILY.c.type == COMPLAINT, DAILY.c.day >= start, DAILY.c.day <= end)
        .group_by(day_bucket)
        .subquery("complaints")
    )
    n_active = func.coalesce(customers.c.active, 0)
    stmt = (
        select(
            cast(periods.c.p_start, Date).label("start"),
            cast(periods.c.p_end - timedelta(days=1), Date).label("end"),
            func.coalesce(customers.c.new, 0).label("new_customers"),
            n_active.label("active_customers"),
            func.coalesce(churned.c.churned, 0).label("churned_customers"),
            case((n_active > 0, cast(customers.c.repeaters, Double) / n_active)).label(
                "repeat_purchase_rate"
            ),
            case((money.c.orders > 0, cast(money.c.revenue, Double) / money.c.orders)).label(
                "average_order_value_minor"
            ),
            func.coalesce(money.c.revenue, 0).label("revenue_minor"),
            func.coalesce(money.c.orders, 0).label("orders"),
            case((money.c.gross > 0, cast(money.c.refunded, Double) / money.c.gross)).label(
                "refund_rate"
            ),
            func.coalesce(complaints.c.complaints, 0).label("complaints"),
            case(
                (n_active > 0, cast(func.coalesce(complaints.c.complaints, 0), Double) / n_active)
            ).label("complaint_rate"),
            customers.c.avg_clv.label("average_clv_minor"),
        )
        .select_from(
            periods.outerjoin(money, money.c.bucket == periods.c.bucket)
            .outerjoin(customers, customers.c.bucket == periods.c.bucket)
            .outerjoin(churned, churned.c.bucket == periods.c.bucket)
            .outerjoin(complaints, complaints.c.bucket == periods.c.bucket)
        )
        .order_by(periods.c.bucket)
    )
    return (await session.execute(stmt)).all()
