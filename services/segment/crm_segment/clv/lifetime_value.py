"""Discounted customer lifetime value from a BG/NBD and a Gamma-Gamma fit.

``CLV = sum over months m = 1..M of (E[Y(m)] - E[Y(m - 1)]) * E[Z] / (1 + d)^m`` where
``E[Y(m)]`` is BG/NBD's expected number of purchases by the end of month ``m``, ``E[Z]`` the
Gamma-Gamma conditional expected order value and ``d`` the monthly discount rate (the approach
of the ``lifetimes`` package). A month is ``WEEKS_PER_MONTH`` weeks (365.25 / 12 days).

``E[Y(m)]`` is ``P(alive | x, t_x, T)`` times the purchases ``N(m)`` of a customer still alive,
which depend on ``x`` and ``T`` only: the sum over months (13 ``hyp2f1`` evaluations) is
computed once per distinct ``(x, T)`` by the batch (:func:`discounted_purchases_if_alive`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crm_segment.clv import bgnbd, gamma_gamma

Array = NDArray[np.float64]

#: Weeks in an average month (365.25 days / 12 / 7).
WEEKS_PER_MONTH = 365.25 / 12 / 7


def _check(months: int, monthly_discount_rate: float) -> None:
    if months < 1:
        raise ValueError("months must be at least 1")
    if monthly_discount_rate < 0:
        raise ValueError("the discount rate must not be negative")


def discounted_purchases_if_alive(
    bg: bgnbd.BgNbdParams,
    x: ArrayLike,
    T: ArrayLike,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> Array:
    """``sum over m = 1..months of (N(m) - N(m - 1)) / (1 + d)^m`` where ``N(m)`` are the
    purchases by the end of month ``m`` of a customer still alive
    (:func:`crm_segment.clv.bgnbd.expected_purchases_if_alive`); depends on ``x`` and ``T``
    only, so customers sharing both can share it."""
    _check(months, monthly_discount_rate)
    xs = np.asarray(x, dtype=np.float64)
    Ts = np.asarray(T, dtype=np.float64)
    total = np.zeros_like(xs)
    previous = np.zeros_like(xs)
    for month in range(1, months + 1):
        cumulative = bgnbd.expected_purchases_if_alive(bg, month * WEEKS_PER_MONTH, xs, Ts)
        total += (cumulative - previous) / (1.0 + monthly_discount_rate) ** month
        previous = cumulative
    return total


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
    in the unit of ``zbar``; ``x, t_x, T`` in weeks.

    ``E[Y(m)] = P(alive) N(m)``, so the sum is ``P(alive) E[Z] sum (N(m) - N(m-1)) / (1+d)^m``
    (:func:`discounted_purchases_if_alive`)."""
    _check(months, monthly_discount_rate)
    spend = gamma_gamma.expected_average_value(gg, x, zbar)
    alive = bgnbd.p_alive(bg, x, t_x, T)
    purchases = discounted_purchases_if_alive(
        bg, x, T, months=months, monthly_discount_rate=monthly_discount_rate
    )
    result: Array = alive * spend * purchases
    return result
