"""SQL of the churn/CLV part: calibration data from ``order``, model fits, score writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Double,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeEngine

from crm_segment.models import Customer, CustomerScore, ModelFit, Order


def active_root(column: ColumnElement[str] | InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """True when the root customer ``column`` may be scored: its ``customer`` row is
    ``active`` or it has no row yet (a merged or erased customer is skipped)."""
    return ~exists().where(Customer.customer_external_id == column, Customer.status != "active")


def qualifying_order(now: datetime) -> ColumnElement[bool]:
    """An order that counts as a purchase: not cancelled, not fully refunded, placed by ``now``."""
    return and_(Order.status != "cancelled", ~Order.fully_refunded, Order.placed_at <= now)


class CalibrationRow(NamedTuple):
    """One root customer's purchases: ``x`` (repeat purchase days), ``t_x_days``, ``t_days``
    and ``zbar`` (mean net value of the repeat purchase days, minor units; 0 when ``x = 0``)."""

    id: str
    x: int
    t_x_days: int
    t_days: int
    zbar: float


async def calibration(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> list[CalibrationRow]:
    """The calibration data of these root customers (``None`` = all) as of ``now``, set-based.

    A purchase is a UTC day with at least one qualifying order (orders on the same day are one
    purchase, their net values summed); ``x`` = purchase days after the first, ``t_x`` = first to
    last purchase day, ``T`` = first purchase day to ``now``'s day (days); ``zbar`` =
    mean net value (total minus refunds) of the repeat purchase days.
    """
    as_of: date = now.date()
    day = func.date(func.timezone("UTC", Order.placed_at)).label("day")
    per_day = select(
        Order.root_external_id.label("id"),
        day,
        func.sum(Order.total_minor - Order.refunded_minor).label("net"),
    ).where(qualifying_order(now), active_root(Order.root_external_id))
    if external_ids is not None:
        per_day = per_day.where(Order.root_external_id.in_(list(external_ids)))
    days = per_day.group_by(Order.root_external_id, day).subquery("days")
    ranked = select(
        days.c.id,
        days.c.day,
        days.c.net,
        func.row_number().over(partition_by=days.c.id, order_by=days.c.day).label("rn"),
    ).subquery("ranked")
    repeats = func.count().filter(ranked.c.rn > 1)
    stmt = (
        select(
            ranked.c.id,
            repeats.label("x"),
            (func.max(ranked.c.day) - func.min(ranked.c.day)).label("t_x_days"),
            (cast(literal(as_of), Date) - func.min(ranked.c.day)).label("t_days"),
            func.coalesce(
                cast(func.sum(ranked.c.net).filter(ranked.c.rn > 1), Double)
                / func.nullif(repeats, 0),
                0.0,
            ).label("zbar"),
        )
        .group_by(ranked.c.id)
        .order_by(ranked.c.id)
    )
    rows = (await session.execute(stmt)).all()
    return [CalibrationRow(r.id, r.x, r.t_x_days, r.t_days, float(r.zbar)) for r in rows]


async def add_fit(
    session: AsyncSession,
    kind: str,
    params: dict[str, float | str],
    diagnostics: dict[str, object],
    customers: int,
    fitted_at: datetime,
) -> ModelFit:
    """Store one fit."""
    fit = ModelFit(
        kind=kind, params=params, diagnostics=diagnostics, customers=customers, fitted_at=fitted_at
    )
    session.add(fit)
    await session.flush()
    return fit


async def latest_fit(session: AsyncSession, kind: str) -> ModelFit | None:
    """The most recent fit of ``kind`` (``bgnbd`` or ``gamma_gamma``)."""
    stmt = (
        select(ModelFit)
        .where(ModelFit.kind == kind)
        .order_by(ModelFit.fitted_at.desc(), ModelFit.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def write_predictions(
    session: AsyncSession,
    ids: Sequence[str],
    p_alive: Sequence[float],
    expected_90d: Sequence[float],
    clv_minor: Sequence[int],
    now: datetime,
) -> None:
    """Upsert the predictions into ``customer_score`` in one statement (parallel ``unnest``)."""

    def array(name: str, values: list[Any], item: type[TypeEngine[Any]]) -> Any:
        return func.unnest(bindparam(name, value=values, type_=ARRAY(item)))

    source = select(
        array("ids", list(ids), Text),
        array("p_alive", list(p_alive), Double),
        array("churn", [1.0 - p for p in p_alive], Double),
        array("expected", list(expected_90d), Double),
        array("clv", list(clv_minor), BigInteger),
        literal(now, DateTime(timezone=True)),
    )
    table: Table = CustomerScore.__table__  # type: ignore[assignment]
    stmt = pg_insert(table).from_select(
        [
            "customer_external_id",
            "p_alive",
            "churn_probability",
            "expected_purchases_90d",
            "clv_12m_minor",
            "computed_at",
        ],
        source,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_external_id"],
        set_={
            "p_alive": stmt.excluded.p_alive,
            "churn_probability": stmt.excluded.churn_probability,
            "expected_purchases_90d": stmt.excluded.expected_purchases_90d,
            "clv_12m_minor": stmt.excluded.clv_12m_minor,
            "computed_at": stmt.excluded.computed_at,
        },
    )
    await session.execute(stmt)


async def clear_stale_predictions(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> None:
    """Null the predictions of customers (of ``external_ids``, or all) that no longer have a
    qualifying order or are no longer active (e.g. their only order was cancelled)."""
    has_purchase = exists().where(
        Order.root_external_id == CustomerScore.customer_external_id, qualifying_order(now)
    )
    stmt = update(CustomerScore).where(
        CustomerScore.p_alive.is_not(None),
        or_(~has_purchase, ~active_root(CustomerScore.customer_external_id)),
    )
    if external_ids is not None:
        stmt = stmt.where(CustomerScore.customer_external_id.in_(list(external_ids)))
    await session.execute(
        stmt.values(
            p_alive=None,
            churn_probability=None,
            expected_purchases_90d=None,
            clv_12m_minor=None,
            computed_at=now,
        )
    )


async def latest_fits(session: AsyncSession) -> list[ModelFit]:
    """The latest BG/NBD and Gamma-Gamma fits (those that exist)."""
    fits = [await latest_fit(session, kind) for kind in ("bgnbd", "gamma_gamma")]
    return [f for f in fits if f is not None]
