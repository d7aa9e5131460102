"""Request and response bodies of the RFM API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _not_future(value: date) -> date:
    """No later than today (UTC): RFM describes what has happened."""
    if value > datetime.now(UTC).date():
        raise ValueError("must not be after today (UTC)")
    return value


class RecomputeRequest(BaseModel):
    """``POST /v1/rfm/recompute``: the reference date and window (defaults: today, settings)."""

    model_config = ConfigDict(extra="forbid")

    as_of: Annotated[date, AfterValidator(_not_future)] | None = Field(
        default=None, description="Reference date (UTC); default today"
    )
    window_days: int | None = Field(
        default=None, ge=1, le=3650, description="Days in the window ending at as_of"
    )
    full: bool = Field(
        default=False,
        description=(
            "false (default): incremental when it can be, starting from the stored scores "
            "(the orders that left the window are taken out, customers still queued for "
            "re-evaluation recomputed, everybody rescored against the new quantiles), with "
            "the same result as a full run; it is full all the same when no batch ran in the "
            "last 7 days, the window length changed or as_of is before today. true: aggregate "
            "every order (to repair anything)"
        ),
    )


class GroupSummary(BaseModel):
    """One RFM group in the summary."""

    group: str
    customers: int
    revenue_minor: int
    #: This group's share of the revenue (monetary) of every scored customer, 0-1.
    revenue_share: float
    avg_recency_days: float | None
    avg_frequency: float | None
    avg_monetary_minor: float | None
    avg_r: float | None
    avg_f: float | None
    avg_m: float | None


class RfmSummary(BaseModel):
    """``GET /v1/rfm/summary``."""

    as_of: date | None = Field(description="Reference date of the last batch")
    window_days: int | None
    method: str | None = Field(description="quantile or thresholds")
    customers: int = Field(description="Customers with an RFM score")
    revenue_minor: int = Field(description="Sum of their monetary values")
    top_20_percent_revenue_share: float = Field(
        description="Share of that revenue from the top 20 % of customers by monetary value"
    )
    groups: list[GroupSummary]
