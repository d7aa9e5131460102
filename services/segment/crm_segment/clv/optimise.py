"""Maximum likelihood over log-parameters, shared by the BG/NBD and Gamma-Gamma fits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

Array = NDArray[np.float64]

#: Returned by an objective for parameters where the likelihood is not finite.
PENALTY = 1e100


@dataclass(frozen=True)
class Diagnostics:
    """How a fit went (what ``model_fit.diagnostics`` stores, with :meth:`as_dict`)."""

    log_likelihood: float
    converged: bool
    iterations: int
    function_evaluations: int
    gradient_norm: float
    message: str
    customers: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready diagnostics."""
        return {
            "log_likelihood": self.log_likelihood,
            "converged": self.converged,
            "iterations": self.iterations,
            "function_evaluations": self.function_evaluations,
            "gradient_norm": self.gradient_norm,
            "message": self.message,
            "customers": self.customers,
            **self.extra,
        }


@dataclass(frozen=True)
class Optimum:
    """The optimiser's answer: the parameters (natural scale) and its diagnostics."""

    params: Array
    converged: bool
    iterations: int
    function_evaluations: int
    gradient_norm: float
    message: str


def minimise_log_params(
    objective: Callable[[Array], float],
    start: Array,
    bounds: Sequence[tuple[float, float]],
    *,
    tol: float = 1e-10,
    max_iter: int = 2000,
) -> Optimum:
    """Minimise ``objective`` (a negative mean log-likelihood of log-parameters).

    L-BFGS-B with tight tolerances from ``start``, then a Nelder-Mead polish (a
    finite-difference gradient can stop L-BFGS-B a little short of the optimum); the better of
    the two is kept. ``converged`` = an optimiser reported success and the optimum is finite;
    the gradient norm is measured by finite differences at the optimum.
    """

    def safe(theta: Array) -> float:
        value = objective(theta)
        return value if np.isfinite(value) else PENALTY

    first = optimize.minimize(
        safe,
        start,
        method="L-BFGS-B",
        bounds=list(bounds),
        options={"ftol": tol * 1e-3, "gtol": tol, "maxiter": max_iter, "maxfun": max_iter * 20},
    )
    polished = optimize.minimize(
        safe,
        np.asarray(first.x, dtype=np.float64),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": max_iter * 4},
    )
    best = polished if polished.fun <= first.fun else first
    theta = np.asarray(best.x, dtype=np.float64)
    finite = bool(np.all(np.isfinite(theta))) and bool(best.fun < PENALTY)
    gradient = optimize.approx_fprime(theta, safe, 1e-7)
    return Optimum(
        params=np.exp(theta),
        converged=finite and (bool(first.success) or bool(polished.success)),
        iterations=int(first.nit) + int(polished.nit),
        function_evaluations=int(first.nfev) + int(polished.nfev),
        gradient_norm=float(np.linalg.norm(gradient)),
        message=f"L-BFGS-B: {first.message}; Nelder-Mead: {polished.message}",
    )
