"""Response bodies of the scores API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

Stage = Literal["prospect", "new", "active", "at_risk", "dormant", "churned"]


class RfmRead(BaseModel):
    """The customer's RFM metrics, scores and group (docs/segment/rfm.md)."""

    as_of: date | None = Field(description="Reference date the metrics were taken at")
    recency_days: int | None
    frequency: int | None
    monetary_minor: int | None
    r: int | None
    f: int | None
    m: int | None
    score: str = Field(description='R, F and M scores, e.g. "543"')
    group: str | None


class ClusterRef(BaseModel):
    """The customer's cluster in the latest clustering run."""

    id: uuid.UUID
    label: str


class OrderTotals(BaseModel):
    """Lifetime aggregates of qualifying orders (not cancelled, not fully refunded)."""

    count: int
    revenue_minor: int
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None


class CustomerScores(BaseModel):
    """``GET /v1/customers/{external_id}/scores``."""

    customer_external_id: str
    survivor_external_id: str | None = Field(
        default=None,
        description="Set when the customer was merged: the scores are the survivor's",
    )
    rfm: RfmRead | None = Field(default=None, description="Null without an order in the window")
    lifecycle: Stage
    lifecycle_changed_at: datetime | None = None
    orders: OrderTotals
    churn_probability: float | None = None
    p_alive: float | None = None
    expected_purchases_90d: float | None = None
    clv_12m_minor: int | None = None
    value_score: int | None = None
    cluster: ClusterRef | None = None
    computed_at: datetime | None = None
