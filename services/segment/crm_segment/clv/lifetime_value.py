"""Discounted customer lifetime value from a BG/NBD and a Gamma-Gamma fit.

``CLV = sum over months m = 1..M of (E[Y(m)] - E[Y(m - 1)]) * E[Z] / (1 + d)^m`` where
``E[Y(m)]`` is BG/NBD's expected number of purchases by the end of month ``m``, ``E[Z]`` the
Gamma-Gamma conditional expected order value and ``d`` the monthly discount rate (the approach
of the ``lifetimes`` package). A month is ``WEEKS_PER_MONTH`` weeks (365.25 / 12 days).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crm_segment.clv import bgnbd, gamma_gamma

Array = NDArray[np.float64]

#: Weeks in an average month (365.25 days / 12 / 7).
WEEKS_PER_MONTH = 365.25 / 12 / 7


def discounted_clv(
    bg: bgnbd.BgNbdParams,
    gg: gamma_gamma.GammaGammaParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    zbar: ArrayLike,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> Array:
    """The discounted value of each customer's purchases over the next ``months`` months,
    in the unit of ``zbar``; ``x, t_x, T`` in weeks."""
    if months < 1:
        raise ValueError("months must be at least 1")
    if monthly_discount_rate < 0:
        raise ValueError("the discount rate must not be negative")
    spend = gamma_gamma.expected_average_value(gg, x, zbar)
    total = np.zeros_like(spend)
    previous = np.zeros_like(spend)
    for month in range(1, months + 1):
        cumulative = bgnbd.expected_purchases(bg, month * WEEKS_PER_MONTH, x, t_x, T)
        total += (cumulative - previous) * spend / (1.0 + monthly_discount_rate) ** month
        previous = cumulative
    return total
