"""Response models of the churn/CLV API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelFitRead(BaseModel):
    """One stored maximum-likelihood fit."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: Literal["bgnbd", "gamma_gamma"]
    params: dict[str, Any] = Field(
        description="bgnbd: r, alpha (weeks), a, b; gamma_gamma: p, q, gamma (minor units)"
    )
    diagnostics: dict[str, Any] = Field(
        description="log_likelihood, converged, iterations, gradient_norm, message, customers, ..."
    )
    customers: int = Field(description="Customers the model was fitted on")
    fitted_at: datetime


class ModelFits(BaseModel):
    """The latest fit of each model (empty before the first successful fit)."""

    items: list[ModelFitRead]
