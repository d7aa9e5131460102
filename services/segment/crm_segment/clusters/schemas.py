"""Request and response models of the clusters API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

#: The k a run may ask for.
K_MIN, K_MAX = 2, 8


class ClusterRunCreate(BaseModel):
    """``POST /v1/clusters/run``: the number of clusters, or none to choose by silhouette."""

    model_config = ConfigDict(extra="forbid")

    k: Annotated[int, Strict(), Field(ge=K_MIN, le=K_MAX)] | None = Field(
        default=None, description="Clusters to form (2-8); omitted = best silhouette in 2-8"
    )


class ClusterRead(BaseModel):
    """One cluster of a run."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    index: int = Field(description="0 = the largest cluster")
    label: str = Field(description='How it differs from everyone, e.g. "high spend · frequent"')
    size: int
    description: dict[str, Any] = Field(
        description="features (mean/median in original units), centroid and difference "
        "(standardised log1p), run"
    )


class ClusterRunRead(BaseModel):
    """The latest run's clusters (``run_id`` null and no clusters before the first run)."""

    run_id: uuid.UUID | None
    k: int | None
    silhouette: float | None
    customers: int | None
    created_at: datetime | None
    clusters: list[ClusterRead]
