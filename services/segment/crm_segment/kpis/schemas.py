"""Response bodies of the KPI API."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

Granularity = Literal["day", "week", "month"]


class PeriodKpis(BaseModel):
    """The KPIs of one period (docs/segment/kpis.md defines each)."""

    start: date = Field(description="First day of the period (UTC)")
    end: date = Field(description="Last day of the period (UTC), included")
    new_customers: int
    active_customers: int
    churned_customers: int
    repeat_purchase_rate: float | None
    average_order_value_minor: float | None
    revenue_minor: int
    orders: int
    refund_rate: float | None
    complaints: int
    complaint_rate: float | None
    average_clv_minor: float | None


class KpiReport(BaseModel):
    """``GET /v1/kpis``."""

    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    granularity: Granularity
    periods: list[PeriodKpis]
