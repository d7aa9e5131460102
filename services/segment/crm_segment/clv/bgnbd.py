"""The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005), in numpy/scipy.

Pure functions over arrays: every customer is one element of ``x`` (repeat purchases), ``t_x``
(time of the last purchase, measured from the first) and ``T`` (time from the first purchase to
the end of observation). The time unit is whatever the caller uses, consistently; the segment
service uses **weeks** (see ``docs/segment/clv.md``), so ``alpha`` is in weeks.

Likelihood of one customer (FHL 2005, eq. 6 written as in their note "Implementing the BG/NBD
Model for Customer Base Analysis in Excel")::

    L = A1 * A2 * (A3 + [x > 0] * A4)
    A1 = Gamma(r + x) alpha^r / Gamma(r)
    A2 = B(a, b + x) / B(a, b)
    A3 = (alpha + T)^-(r + x)
    A4 = a / (b + x - 1) * (alpha + t_x)^-(r + x)

evaluated in logs (``gammaln``, ``betaln``, ``logaddexp``) so large ``x`` or ``T`` never
overflow. The fit maximises the summed log-likelihood over the log-parameters (L-BFGS-B,
polished by Nelder-Mead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from crm_segment.clv.optimise import Diagnostics, minimise_log_params

Array = NDArray[np.float64]

#: Parameter names in the order of the optimiser's vector.
PARAMS = ("r", "alpha", "a", "b")


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        """The parameters by name (what ``model_fit.params`` stores)."""
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class BgNbdFit:
    """A BG/NBD fit: the parameters and how the optimiser got there."""

    params: BgNbdParams
    diagnostics: Diagnostics


def _arrays(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[Array, Array, Array]:
    xs = np.asarray(x, dtype=np.float64)
    txs = np.asarray(t_x, dtype=np.float64)
    Ts = np.asarray(T, dtype=np.float64)
    if not (xs.shape == txs.shape == Ts.shape):
        raise ValueError("x, t_x and T must have the same shape")
    if np.any(xs < 0) or np.any(txs < 0) or np.any(Ts < txs):
        raise ValueError("need x >= 0 and 0 <= t_x <= T")
    return xs, txs, Ts


def log_likelihood_terms(
    r: float, alpha: float, a: float, b: float, x: Array, t_x: Array, T: Array
) -> Array:
    """Per-customer log-likelihood (array like ``x``)."""
    ln_a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = special.betaln(a, b + x) - special.betaln(a, b)
    ln_a3 = -(r + x) * np.log(alpha + T)
    has_repeat = x > 0
    # A4 only exists for x > 0; b + x - 1 > 0 there because b > 0 and x >= 1.
    safe = np.where(has_repeat, b + x - 1.0, 1.0)
    ln_a4 = np.where(
        has_repeat,
        np.log(a) - np.log(safe) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    terms: Array = ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4)
    return terms


def log_likelihood(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> float:
    """Summed log-likelihood of the customers under ``params``."""
    xs, txs, Ts = _arrays(x, t_x, T)
    return float(
        np.sum(log_likelihood_terms(params.r, params.alpha, params.a, params.b, xs, txs, Ts))
    )


def _start(x: Array, t_x: Array, T: Array) -> Array:
    """Start values (log-parameters) from moments: r = 1, alpha from the mean rate, a = b = 1."""
    del t_x
    rate = float(np.sum(x) / max(np.sum(T), 1e-9))
    alpha = 1.0 / max(rate, 1e-3)
    start: Array = np.log(np.array([1.0, alpha, 1.0, 1.0]))
    return start


def fit(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    tol: float = 1e-10,
    max_iter: int = 2000,
) -> BgNbdFit:
    """Maximum-likelihood fit of BG/NBD to ``x, t_x, T``.

    Minimises the negative mean log-likelihood over ``log(r, alpha, a, b)`` (so every
    parameter stays positive), see :func:`crm_segment.clv.optimise.minimise_log_params`.
    """
    xs, txs, Ts = _arrays(x, t_x, T)
    n = xs.size
    if n == 0:
        raise ValueError("no customers to fit")

    def objective(theta: Array) -> float:
        r, alpha, a, b = np.exp(theta)
        return -float(np.sum(log_likelihood_terms(r, alpha, a, b, xs, txs, Ts))) / n

    best = minimise_log_params(
        objective, _start(xs, txs, Ts), [(-15.0, 15.0)] * 4, tol=tol, max_iter=max_iter
    )
    r, alpha, a, b = (float(v) for v in best.params)
    params = BgNbdParams(r=r, alpha=alpha, a=a, b=b)
    ll = log_likelihood(params, xs, txs, Ts)
    return BgNbdFit(
        params=params,
        diagnostics=Diagnostics(
            log_likelihood=ll,
            converged=best.converged and bool(np.isfinite(ll)),
            iterations=best.iterations,
            function_evaluations=best.function_evaluations,
            gradient_norm=best.gradient_norm,
            message=best.message,
            customers=n,
            extra={
                "repeat_customers": int(np.count_nonzero(xs > 0)),
                "mean_repeat_purchases": float(np.mean(xs)),
            },
        ),
    )


def _dropout_odds(params: BgNbdParams, x: Array, t_x: Array, T: Array) -> Array:
    """``[x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)``, from logs."""
    has_repeat = x > 0
    safe = np.where(has_repeat, params.b + x - 1.0, 1.0)
    ln_odds = (
        np.log(params.a)
        - np.log(safe)
        + (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + t_x))
    )
    odds: Array = np.where(has_repeat, np.exp(np.minimum(ln_odds, 700.0)), 0.0)
    return odds


def p_alive(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Array:
    """P(customer still alive | x, t_x, T) (FHL 2005, eq. 11); exactly 1 when ``x = 0``."""
    xs, txs, Ts = _arrays(x, t_x, T)
    result: Array = 1.0 / (1.0 + _dropout_odds(params, xs, txs, Ts))
    return result


def expected_purchases_if_alive(
    params: BgNbdParams, t: float | ArrayLike, x: ArrayLike, T: ArrayLike
) -> Array:
    """Expected purchases in the next ``t`` time units of a customer who is still alive, given
    ``x`` and ``T`` (``t_x`` only enters through :func:`p_alive`).

    ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1;
    t/(alpha+T+t))]`` (FHL 2005, eq. 10 without its ``P(alive)`` denominator). The power times
    the hypergeometric function is computed through Euler's transformation,
    ``(1-z)^(r+x) 2F1(r+x, b+x; c; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)``, whose
    parameters do not grow with ``x`` (the direct form overflows for frequent buyers).
    """
    xs = np.asarray(x, dtype=np.float64)
    Ts = np.asarray(T, dtype=np.float64)
    if xs.shape != Ts.shape:
        raise ValueError("x and T must have the same shape")
    ts = np.broadcast_to(np.asarray(t, dtype=np.float64), xs.shape)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    c = a + b + xs - 1.0
    z = ts / (alpha + Ts + ts)
    one_minus_z = (alpha + Ts) / (alpha + Ts + ts)
    power_hyp = one_minus_z ** (a - 1.0) * special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    if abs(a - 1.0) < 1e-9:
        a = 1.0 + 1e-9  # the limit a -> 1 is continuous; avoid dividing by zero
    result: Array = c / (a - 1.0) * (1.0 - power_hyp)
    return result


def expected_purchases(
    params: BgNbdParams, t: float | ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> Array:
    """Expected purchases in the next ``t`` time units given ``x, t_x, T`` (FHL 2005, eq. 10).

    ``E[Y(t)] = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x;
    a+b+x-1; t/(alpha+T+t))] / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``, i.e.
    :func:`expected_purchases_if_alive` divided by the same ``1 + odds`` as :func:`p_alive`.
    """
    xs, txs, Ts = _arrays(x, t_x, T)
    result: Array = expected_purchases_if_alive(params, t, xs, Ts) / (
        1.0 + _dropout_odds(params, xs, txs, Ts)
    )
    return result
