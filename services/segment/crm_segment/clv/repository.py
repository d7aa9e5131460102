"""SQL of the churn/CLV part: calibration data from ``order``, model fits, score writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    ARRAY,
    BigInteger,
    BindParameter,
    ColumnElement,
    Date,
    DateTime,
    Double,
    Numeric,
    Subquery,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    column,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.selectable import TableValuedAlias

from crm_segment.models import Customer, CustomerScore, ModelFit, Order


def active_root(column: ColumnElement[str] | InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """True when the root customer ``column`` may be scored: its ``customer`` row is
    ``active`` or it has no row yet (a merged or erased customer is skipped)."""
    return ~exists().where(Customer.customer_external_id == column, Customer.status != "active")


def qualifying_order(now: datetime) -> ColumnElement[bool]:
    """An order that counts as a purchase: not cancelled, not fully refunded, placed by ``now``."""
    return and_(Order.status != "cancelled", ~Order.fully_refunded, Order.placed_at <= now)


Array = NDArray[np.float64]


def _array(values: list[Any] | None, dtype: type[np.generic] = np.float64) -> NDArray[Any]:
    """A column fetched as one ``array_agg`` (``None`` when there were no rows); SQL ``NULL``
    becomes NaN."""
    return np.array(values if values is not None else [], dtype=dtype)


def _any(column: InstrumentedAttribute[str], external_ids: Sequence[str]) -> ColumnElement[bool]:
    """``column = ANY(:ids)``: one array parameter, whatever the number of ids."""
    return column == any_(bindparam(None, list(external_ids), type_=ARRAY(Text)))


def _per_customer(external_ids: Sequence[str] | None, now: datetime) -> Subquery:
    """One row per root customer with a qualifying order: ``id, x, t_x_days, t_days, zbar``.

    Two aggregates and no window: purchase days (``GROUP BY customer, day``), then per
    customer the count, first and last day, the summed net value and the net value of the
    first day (the first element of the days' values in day order; PostgreSQL feeds the
    ordered aggregate from the day-sorted input without sorting again)."""
    as_of: date = now.date()
    day = func.date(func.timezone("UTC", Order.placed_at))
    per_day = select(
        Order.root_external_id.label("id"),
        day.label("day"),
        func.sum(Order.total_minor - Order.refunded_minor).label("net"),
    ).where(qualifying_order(now), active_root(Order.root_external_id))
    if external_ids is not None:
        per_day = per_day.where(_any(Order.root_external_id, external_ids))
    days = per_day.group_by(Order.root_external_id, day).subquery("days")
    repeats = func.count() - 1
    first_net = func.array_agg(aggregate_order_by(days.c.net, days.c.day), type_=ARRAY(Numeric))[1]
    return (
        select(
            days.c.id,
            repeats.label("x"),
            (func.max(days.c.day) - func.min(days.c.day)).label("t_x_days"),
            (cast(literal(as_of), Date) - func.min(days.c.day)).label("t_days"),
            func.coalesce(
                cast(func.sum(days.c.net) - first_net, Double)
                / cast(func.nullif(repeats, 0), Double),
                0.0,
            ).label("zbar"),
        )
        .group_by(days.c.id)
        .subquery("customers")
    )


#: Planner settings turned off while aggregating every customer's orders: a scan of the
#: ``(root_external_id, placed_at)`` index visits the heap in customer order, one random page
#: per order (several times slower than reading the table and sorting it).
_INDEX_PATHS = ("enable_indexscan", "enable_bitmapscan")


@asynccontextmanager
async def _sequential_scan(session: AsyncSession, everyone: bool) -> AsyncIterator[None]:
    """For the statement inside, when it aggregates everyone's orders, read ``order``
    sequentially (then sort) instead of through an index; the settings are restored after."""
    if not everyone:
        yield
        return
    before = [await session.scalar(select(func.current_setting(n))) for n in _INDEX_PATHS]
    for name in _INDEX_PATHS:
        await session.execute(select(func.set_config(name, "off", True)))
    try:
        yield
    finally:
        for name, value in zip(_INDEX_PATHS, before, strict=True):
            await session.execute(select(func.set_config(name, value, True)))


@dataclass(frozen=True)
class CalibrationColumns:
    """Per root customer with a qualifying order: ``x`` (repeat purchase days), ``t_x_days``,
    ``t_days`` and ``zbar`` (mean net value of the repeat purchase days, minor units; 0 when
    ``x = 0``), as arrays in the order of ``ids``."""

    ids: list[str]
    x: Array
    t_x_days: Array
    t_days: Array
    zbar: Array


async def calibration(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> CalibrationColumns:
    """The calibration data of these root customers (``None`` = all) as of ``now``, set-based,
    fetched as one row of arrays (no per-customer row objects).

    A purchase is a UTC day with at least one qualifying order (orders on the same day are one
    purchase, their net values summed); ``x`` = purchase days after the first, ``t_x`` = first to
    last purchase day, ``T`` = first purchase day to ``now``'s day (days); ``zbar`` =
    mean net value (total minus refunds) of the repeat purchase days.
    """
    c = _per_customer(external_ids, now)
    stmt = select(
        func.array_agg(c.c.id),
        func.array_agg(c.c.x),
        func.array_agg(c.c.t_x_days),
        func.array_agg(c.c.t_days),
        func.array_agg(c.c.zbar),
    )
    async with _sequential_scan(session, external_ids is None):
        ids, x, t_x, t, zbar = (await session.execute(stmt)).one()
    return CalibrationColumns(ids or [], _array(x), _array(t_x), _array(t), _array(zbar))


@dataclass(frozen=True)
class PredictionInput:
    """What predicting a set of customers needs: their calibration data, what
    ``customer_score`` holds for them now (NaN = ``NULL``; ``stored`` = has a row), and the
    customers whose predictions must be cleared (a prediction but no qualifying order any
    more, or no longer active)."""

    calibration: CalibrationColumns
    stored: NDArray[np.bool_]
    p_alive: Array
    expected_90d: Array
    clv_minor: Array
    stale: list[str]


async def prediction_input(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> PredictionInput:
    """:class:`PredictionInput` of these root customers (``None`` = all) as of ``now``: the
    calibration aggregate ``FULL JOIN`` the stored predictions, in one statement and one row
    of arrays."""
    c = _per_customer(external_ids, now)
    score = select(
        CustomerScore.customer_external_id.label("id"),
        CustomerScore.p_alive,
        CustomerScore.expected_purchases_90d,
        CustomerScore.clv_12m_minor,
    )
    if external_ids is not None:
        score = score.where(_any(CustomerScore.customer_external_id, external_ids))
    s = score.subquery("score")
    joined = c.outerjoin(s, c.c.id == s.c.id, full=True)
    stmt = (
        select(
            func.array_agg(func.coalesce(c.c.id, s.c.id)),
            func.array_agg(c.c.x),
            func.array_agg(c.c.t_x_days),
            func.array_agg(c.c.t_days),
            func.array_agg(c.c.zbar),
            func.array_agg(s.c.id.is_not(None)),
            func.array_agg(s.c.p_alive),
            func.array_agg(s.c.expected_purchases_90d),
            func.array_agg(cast(s.c.clv_12m_minor, Double)),
        )
        .select_from(joined)
        .where(or_(c.c.id.is_not(None), s.c.p_alive.is_not(None)))
    )
    async with _sequential_scan(session, external_ids is None):
        row = (await session.execute(stmt)).one()
    ids: list[str] = row[0] or []
    x = _array(row[1])
    known = ~np.isnan(x)
    if known.all():
        keep: Any = slice(None)
        stale: list[str] = []
    else:
        keep = np.flatnonzero(known)
        stale = [i for i, k in zip(ids, known.tolist(), strict=True) if not k]
        ids = [ids[i] for i in keep.tolist()]
    return PredictionInput(
        calibration=CalibrationColumns(
            ids, x[keep], _array(row[2])[keep], _array(row[3])[keep], _array(row[4])[keep]
        ),
        stored=_array(row[5], np.bool_)[keep],
        p_alive=_array(row[6])[keep],
        expected_90d=_array(row[7])[keep],
        clv_minor=_array(row[8])[keep],
        stale=stale,
    )


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


#: The columns :func:`write_predictions` and :func:`insert_predictions` write, in the order of
#: their arrays.
_PREDICTION_COLUMNS = (
    ("customer_external_id", Text),
    ("p_alive", Double),
    ("churn_probability", Double),
    ("expected_purchases_90d", Double),
    ("clv_12m_minor", BigInteger),
)


def _predictions(*columns: Sequence[Any]) -> TableValuedAlias:
    """``unnest(:ids, :p_alive, ...) AS new(customer_external_id, p_alive, ...)``: one array
    parameter per column, unnested side by side in ``FROM`` (so the planner knows the row
    count and joins ``customer_score`` by hash)."""
    arrays: list[BindParameter[Any]] = [
        bindparam(name, value=list(values), type_=ARRAY(item))
        for (name, item), values in zip(_PREDICTION_COLUMNS, columns, strict=True)
    ]
    return (
        func.unnest(*arrays)
        .table_valued(*(column(name, item()) for name, item in _PREDICTION_COLUMNS))
        .render_derived(name="new")
    )


async def write_predictions(
    session: AsyncSession,
    ids: Sequence[str],
    p_alive: Sequence[float],
    churn: Sequence[float],
    expected_90d: Sequence[float],
    clv_minor: Sequence[int],
    now: datetime,
) -> None:
    """Write these customers' predictions into their existing ``customer_score`` rows: one
    ``UPDATE ... FROM unnest(...)`` that skips rows already holding these four values."""
    if not ids:
        return
    new = _predictions(ids, p_alive, churn, expected_90d, clv_minor)
    score = CustomerScore.__table__.c
    written = [name for name, _ in _PREDICTION_COLUMNS[1:]]
    await session.execute(
        update(CustomerScore)
        .where(
            score.customer_external_id == new.c.customer_external_id,
            tuple_(*(score[c] for c in written)).is_distinct_from(
                tuple_(*(new.c[c] for c in written))
            ),
        )
        .values({**{c: new.c[c] for c in written}, "computed_at": now})
        .execution_options(synchronize_session=False)
    )


async def insert_predictions(
    session: AsyncSession,
    ids: Sequence[str],
    p_alive: Sequence[float],
    churn: Sequence[float],
    expected_90d: Sequence[float],
    clv_minor: Sequence[int],
    now: datetime,
) -> None:
    """Create the ``customer_score`` rows of customers that have none yet, with their
    predictions (a row created meanwhile gets the predictions)."""
    if not ids:
        return
    new = _predictions(ids, p_alive, churn, expected_90d, clv_minor)
    names = [name for name, _ in _PREDICTION_COLUMNS]
    table: Table = CustomerScore.__table__  # type: ignore[assignment]
    stmt = pg_insert(table).from_select(
        [*names, "computed_at"],
        select(*(new.c[c] for c in names), literal(now, DateTime(timezone=True))),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_external_id"],
        set_={c: stmt.excluded[c] for c in (*names[1:], "computed_at")},
    )
    await session.execute(stmt)


async def clear_predictions(
    session: AsyncSession, external_ids: Sequence[str], now: datetime
) -> None:
    """Null the predictions of these customers (no qualifying order any more, or no longer
    active)."""
    if not external_ids:
        return
    await session.execute(
        update(CustomerScore)
        .where(
            CustomerScore.p_alive.is_not(None),
            _any(CustomerScore.customer_external_id, external_ids),
        )
        .values(
            p_alive=None,
            churn_probability=None,
            expected_purchases_90d=None,
            clv_12m_minor=None,
            computed_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def latest_fits(session: AsyncSession) -> list[ModelFit]:
    """The latest BG/NBD and Gamma-Gamma fits (those that exist)."""
    fits = [await latest_fit(session, kind) for kind in ("bgnbd", "gamma_gamma")]
    return [f for f in fits if f is not None]
