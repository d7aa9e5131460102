"""Churn and CLV: fitting BG/NBD + Gamma-Gamma on the shop's orders and predicting with them.

Time unit: weeks (``x, t_x, T``; ``alpha`` is in weeks); money: minor units of the shop's
currency. See ``docs/segment/clv.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.clv import bgnbd, gamma_gamma, repository
from crm_segment.clv.errors import FitFailed
from crm_segment.clv.lifetime_value import discounted_purchases_if_alive
from crm_segment.config import settings
from crm_segment.models import ModelFit

log = logging.getLogger(__name__)

#: The horizon of ``expected_purchases_90d``, in weeks.
HORIZON_90D_WEEKS = 90 / 7
#: Months of ``clv_12m_minor``.
CLV_MONTHS = 12
#: Customers written per statement when predicting everyone.
CHUNK = 250_000
#: ``x, t_x, T`` are in weeks (the unit of the BG/NBD literature).
DAYS_PER_WEEK = 7.0
#: Stored precision: ``p_alive`` and ``churn_probability`` to 4 decimals,
#: ``expected_purchases_90d`` to 3, ``clv_12m_minor`` in whole minor units. A row is rewritten
#: only when one of them changes at this precision.
PROBABILITY_DECIMALS = 4
PURCHASES_DECIMALS = 3

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Calibration:
    """Per root customer with a qualifying order: BG/NBD's ``x, t_x, T`` (weeks) and the mean
    net value of the repeat purchases ``zbar`` (minor units; 0 when ``x = 0``)."""

    ids: list[str]
    x: Array
    t_x: Array
    T: Array
    zbar: Array

    def __len__(self) -> int:
        """The number of customers."""
        return len(self.ids)


def _weeks(columns: repository.CalibrationColumns) -> Calibration:
    return Calibration(
        ids=columns.ids,
        x=columns.x,
        t_x=columns.t_x_days / DAYS_PER_WEEK,
        T=columns.t_days / DAYS_PER_WEEK,
        zbar=columns.zbar,
    )


async def calibration(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> Calibration:
    """The calibration arrays of these root customers (``None`` = all) as of ``now``; see
    :func:`crm_segment.clv.repository.calibration` for the definitions."""
    return _weeks(await repository.calibration(session, external_ids, now))


async def fit_models(session: AsyncSession, now: datetime) -> dict[str, Any]:
    """Fit both models on every active root customer's purchases as of ``now``, store the two
    fits, then predict every customer; the job result.

    Raises :class:`FitFailed` (nothing stored, the previous fits stay in use) when fewer than
    ``clv_min_repeat_customers`` customers have repeat purchases or an optimiser does not
    converge.
    """
    data = await calibration(session, None, now)
    repeat = int(np.count_nonzero(data.x > 0))
    needed = settings.clv_min_repeat_customers
    if repeat < needed:
        raise FitFailed(
            f"not enough data: {repeat} customers with repeat purchases "
            f"({len(data)} with a purchase); at least {needed} are needed"
        )
    bg = bgnbd.fit(data.x, data.t_x, data.T)
    if not bg.diagnostics.converged:
        raise FitFailed(f"BG/NBD did not converge: {bg.diagnostics.message}")
    valued = int(np.count_nonzero((data.x > 0) & (data.zbar > 0)))
    if valued < needed:
        raise FitFailed(
            f"not enough data: {valued} customers with a positive repeat purchase value; "
            f"at least {needed} are needed"
        )
    gg = gamma_gamma.fit(data.x, data.zbar)
    if not gg.diagnostics.converged:
        raise FitFailed(
            f"Gamma-Gamma did not converge (q = {gg.params.q:.4g}, needs > 1): "
            f"{gg.diagnostics.message}"
        )
    fitted_at = datetime.now(UTC)
    common = {"as_of": now.isoformat(), "time_unit": "week"}
    bg_row = await repository.add_fit(
        session,
        "bgnbd",
        dict(bg.params.as_dict()),
        {**bg.diagnostics.as_dict(), **common},
        bg.diagnostics.customers,
        fitted_at,
    )
    gg_row = await repository.add_fit(
        session,
        "gamma_gamma",
        dict(gg.params.as_dict()),
        {**gg.diagnostics.as_dict(), **common, "money_unit": "minor"},
        gg.diagnostics.customers,
        fitted_at,
    )
    predicted = await predict_customers(session, None, now)
    return {
        "bgnbd": {
            "id": str(bg_row.id),
            **bg_row.params,
            "log_likelihood": bg.diagnostics.log_likelihood,
        },
        "gamma_gamma": {
            "id": str(gg_row.id),
            **gg_row.params,
            "log_likelihood": gg.diagnostics.log_likelihood,
        },
        "customers": len(data),
        "repeat_customers": repeat,
        "predicted": predicted,
    }


def _bg_params(fit: ModelFit) -> bgnbd.BgNbdParams:
    p = fit.params
    return bgnbd.BgNbdParams(r=p["r"], alpha=p["alpha"], a=p["a"], b=p["b"])


def _gg_params(fit: ModelFit) -> gamma_gamma.GammaGammaParams:
    p = fit.params
    return gamma_gamma.GammaGammaParams(p=p["p"], q=p["q"], gamma=p["gamma"])


def _finite(values: Array) -> Array:
    bad = ~np.isfinite(values)
    if bad.any():
        log.warning("%d non-finite predictions replaced by 0", int(bad.sum()))
    return np.where(bad, 0.0, values)


@dataclass(frozen=True)
class Predictions:
    """The four stored predictions of each customer of a :class:`Calibration`, rounded to
    the stored precision (``PROBABILITY_DECIMALS``, ``PURCHASES_DECIMALS``, minor units)."""

    p_alive: Array
    churn: Array
    expected_90d: Array
    clv_minor: NDArray[np.int64]


def predict(
    bg: bgnbd.BgNbdParams, gg: gamma_gamma.GammaGammaParams, data: Calibration
) -> Predictions:
    """p_alive, churn probability, expected purchases in 90 days and the 12-month CLV.

    The parts with ``hyp2f1`` (the purchases of a customer still alive, 13 horizons) depend on
    ``x`` and ``T`` only and are computed once per distinct pair (``x`` is a count and ``T`` a
    whole number of days, so a shop has far fewer pairs than customers); ``P(alive)`` and the
    expected spend per customer."""
    x, t_x, T = data.x, data.t_x, data.T
    if len(data) == 0:
        empty = np.zeros(0)
        return Predictions(empty, empty, empty, np.zeros(0, dtype=np.int64))
    days = np.rint(T * DAYS_PER_WEEK).astype(np.int64)
    key = x.astype(np.int64) * (int(days.max()) + 1) + days
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    alive = bgnbd.p_alive(bg, x, t_x, T)
    horizon = bgnbd.expected_purchases_if_alive(bg, HORIZON_90D_WEEKS, x[first], T[first])
    discounted = discounted_purchases_if_alive(
        bg,
        x[first],
        T[first],
        months=CLV_MONTHS,
        monthly_discount_rate=settings.clv_monthly_discount_rate,
    )
    spend = gamma_gamma.expected_average_value(gg, x, data.zbar)
    expected = _finite(alive * horizon[inverse])
    clv = _finite(alive * spend * discounted[inverse])
    p_alive = np.round(alive, PROBABILITY_DECIMALS)
    return Predictions(
        p_alive=p_alive,
        churn=np.round(1.0 - p_alive, PROBABILITY_DECIMALS),
        expected_90d=np.round(np.maximum(expected, 0.0), PURCHASES_DECIMALS).astype(np.float64),
        clv_minor=np.rint(np.maximum(clv, 0.0)).astype(np.int64),
    )


async def predict_customers(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> int:
    """Write p_alive, churn probability, expected purchases and CLV of these root customers
    (``None`` = every customer) from the latest fits; the number of customers predicted.

    Only active customers with a qualifying order get predictions (BG/NBD is conditional on a
    first purchase); customers of the batch that no longer have one get theirs cleared. Rows
    whose stored values are already the new ones (at the stored precision) are not rewritten.
    Does nothing before the first fit.
    """
    bg_fit = await repository.latest_fit(session, "bgnbd")
    gg_fit = await repository.latest_fit(session, "gamma_gamma")
    if bg_fit is None or gg_fit is None:
        return 0
    if external_ids is not None and not external_ids:
        return 0
    bg, gg = _bg_params(bg_fit), _gg_params(gg_fit)
    given = await repository.prediction_input(session, external_ids, now)
    data = _weeks(given.calibration)
    new = predict(bg, gg, data)
    # NaN (a NULL stored) differs from everything
    changed = (
        (given.p_alive != new.p_alive)
        | (given.expected_90d != new.expected_90d)
        | (given.clv_minor != new.clv_minor)
    )
    for rows, write in (
        (np.flatnonzero(changed & given.stored), repository.write_predictions),
        (np.flatnonzero(~given.stored), repository.insert_predictions),
    ):
        for start in range(0, len(rows), CHUNK):
            part = rows[start : start + CHUNK]
            await write(
                session,
                [data.ids[i] for i in part.tolist()],
                new.p_alive[part].tolist(),
                new.churn[part].tolist(),
                new.expected_90d[part].tolist(),
                new.clv_minor[part].tolist(),
                now,
            )
    await repository.clear_predictions(session, given.stale, now)
    return len(data)
