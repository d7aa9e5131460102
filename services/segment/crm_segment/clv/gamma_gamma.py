"""The Gamma-Gamma model of monetary value (Fader & Hardie 2013), in numpy/scipy.

A customer's transaction values are Gamma(p, nu) around their own mean spend, with
nu ~ Gamma(q, gamma) across customers. Only customers with repeat purchases (``x > 0``) and a
positive average repeat value ``zbar`` enter the fit. Log-density of ``zbar`` given ``x``::

    ln f = lnGamma(px + q) - lnGamma(px) - lnGamma(q) + q ln(gamma) + (px - 1) ln(zbar)
           + px ln(x) - (px + q) ln(gamma + x zbar)

The conditional expected average order value is
``E[Z | x, zbar] = (p (gamma + x zbar)) / (p x + q - 1)`` (the population mean
``p gamma / (q - 1)`` for ``x = 0``), which needs ``q > 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from crm_segment.clv.optimise import Diagnostics, minimise_log_params

Array = NDArray[np.float64]


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters ``p``, ``q``, ``gamma``."""

    p: float
    q: float
    gamma: float

    def as_dict(self) -> dict[str, float]:
        """The parameters by name (what ``model_fit.params`` stores)."""
        return {"p": self.p, "q": self.q, "gamma": self.gamma}


@dataclass(frozen=True)
class GammaGammaFit:
    """A Gamma-Gamma fit: the parameters and how the optimiser got there."""

    params: GammaGammaParams
    diagnostics: Diagnostics


def _arrays(x: ArrayLike, zbar: ArrayLike) -> tuple[Array, Array]:
    xs = np.asarray(x, dtype=np.float64)
    zs = np.asarray(zbar, dtype=np.float64)
    if xs.shape != zs.shape:
        raise ValueError("x and zbar must have the same shape")
    return xs, zs


def log_likelihood_terms(p: float, q: float, gamma: float, x: Array, zbar: Array) -> Array:
    """Per-customer log-likelihood of ``zbar`` (customers with ``x > 0``, ``zbar > 0``)."""
    px = p * x
    terms: Array = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * np.log(zbar)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * zbar)
    )
    return terms


def log_likelihood(params: GammaGammaParams, x: ArrayLike, zbar: ArrayLike) -> float:
    """Summed log-likelihood of the customers under ``params``."""
    xs, zs = _arrays(x, zbar)
    return float(np.sum(log_likelihood_terms(params.p, params.q, params.gamma, xs, zs)))


def fit(
    x: ArrayLike, zbar: ArrayLike, *, tol: float = 1e-10, max_iter: int = 2000
) -> GammaGammaFit:
    """Maximum-likelihood fit on the customers with ``x > 0`` and ``zbar > 0`` (others ignored).

    Minimises over ``log(p, q, gamma)`` from p = 1, q = 2, gamma = mean(zbar); ``converged``
    also requires ``q > 1`` (the conditional mean spend is undefined otherwise).
    """
    xs, zs = _arrays(x, zbar)
    keep = (xs > 0) & (zs > 0)
    xs, zs = xs[keep], zs[keep]
    n = xs.size
    if n == 0:
        raise ValueError("no customers with repeat purchases to fit")

    def objective(theta: Array) -> float:
        p, q, gamma = np.exp(theta)
        return -float(np.sum(log_likelihood_terms(p, q, gamma, xs, zs))) / n

    start = np.log(np.array([1.0, 2.0, max(float(np.mean(zs)), 1e-6)]))
    best = minimise_log_params(
        objective,
        start,
        [(-15.0, 15.0), (-15.0, 15.0), (-30.0, 40.0)],
        tol=tol,
        max_iter=max_iter,
    )
    p, q, gamma = (float(v) for v in best.params)
    params = GammaGammaParams(p=p, q=q, gamma=gamma)
    ll = log_likelihood(params, xs, zs)
    return GammaGammaFit(
        params=params,
        diagnostics=Diagnostics(
            log_likelihood=ll,
            converged=best.converged and bool(np.isfinite(ll)) and q > 1.0,
            iterations=best.iterations,
            function_evaluations=best.function_evaluations,
            gradient_norm=best.gradient_norm,
            message=best.message,
            customers=n,
            extra={"mean_zbar": float(np.mean(zs))},
        ),
    )


def expected_average_value(params: GammaGammaParams, x: ArrayLike, zbar: ArrayLike) -> Array:
    """Conditional expected average transaction value ``E[Z | x, zbar]``.

    ``(p (gamma + x zbar)) / (p x + q - 1)``: a weighted mean of the population mean
    ``p gamma / (q - 1)`` and the customer's own ``zbar``; ``x = 0`` gives the population mean.
    A negative ``zbar`` (refunds above the paid amount) counts as 0.
    """
    xs, zs = _arrays(x, zbar)
    zs = np.maximum(zs, 0.0)
    result: Array = params.p * (params.gamma + xs * zs) / (params.p * xs + params.q - 1.0)
    return result
