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
from crm_segment.clv.lifetime_value import discounted_clv
from crm_segment.config import settings
from crm_segment.models import ModelFit

log = logging.getLogger(__name__)

#: The horizon of ``expected_purchases_90d``, in weeks.
HORIZON_90D_WEEKS = 90 / 7
#: Months of ``clv_12m_minor``.
CLV_MONTHS = 12
#: Customers predicted per statement when predicting everyone.
CHUNK = 50_000
#: ``x, t_x, T`` are in weeks (the unit of the BG/NBD literature).
DAYS_PER_WEEK = 7.0

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


async def calibration(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> Calibration:
    """The calibration arrays of these root customers (``None`` = all) as of ``now``; see
    :func:`crm_segment.clv.repository.calibration` for the definitions."""
    rows = await repository.calibration(session, external_ids, now)
    return Calibration(
        ids=[r.id for r in rows],
        x=np.array([r.x for r in rows], dtype=np.float64),
        t_x=np.array([r.t_x_days for r in rows], dtype=np.float64) / DAYS_PER_WEEK,
        T=np.array([r.t_days for r in rows], dtype=np.float64) / DAYS_PER_WEEK,
        zbar=np.array([r.zbar for r in rows], dtype=np.float64),
    )


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


async def predict_customers(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> int:
    """Write p_alive, churn probability, expected purchases and CLV of these root customers
    (``None`` = every customer) from the latest fits; the number of rows written.

    Only active customers with a qualifying order get predictions (BG/NBD is conditional on a
    first purchase); customers of the batch that no longer have one get theirs cleared. Does
    nothing before the first fit.
    """
    bg_fit = await repository.latest_fit(session, "bgnbd")
    gg_fit = await repository.latest_fit(session, "gamma_gamma")
    if bg_fit is None or gg_fit is None:
        return 0
    if external_ids is not None and not external_ids:
        return 0
    bg, gg = _bg_params(bg_fit), _gg_params(gg_fit)
    data = await calibration(session, external_ids, now)
    for start in range(0, len(data), CHUNK):
        part = slice(start, start + CHUNK)
        x, t_x, T, zbar = data.x[part], data.t_x[part], data.T[part], data.zbar[part]
        alive = bgnbd.p_alive(bg, x, t_x, T)
        expected = _finite(bgnbd.expected_purchases(bg, HORIZON_90D_WEEKS, x, t_x, T))
        clv = _finite(
            discounted_clv(
                bg,
                gg,
                x,
                t_x,
                T,
                zbar,
                months=CLV_MONTHS,
                monthly_discount_rate=settings.clv_monthly_discount_rate,
            )
        )
        await repository.write_predictions(
            session,
            data.ids[part],
            alive.tolist(),
            np.maximum(expected, 0.0).tolist(),
            np.rint(np.maximum(clv, 0.0)).astype(np.int64).tolist(),
            now,
        )
    await repository.clear_stale_predictions(session, external_ids, now)
    return len(data)
