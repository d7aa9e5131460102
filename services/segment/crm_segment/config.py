"""The segment service's settings: environment variables prefixed ``SEGMENT_``."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the segment service (see the README for every variable)."""

    model_config = SettingsConfigDict(env_prefix="SEGMENT_", extra="ignore")

    service_name: str = "segment"
    api_port: int = 8002
    worker_metrics_port: int = 9102

    #: How often the worker takes due customers from the re-evaluation queue (seconds).
    evaluation_interval_seconds: float = 0.5
    #: How many due customers one evaluation transaction takes.
    evaluation_batch_size: int = 500
    #: Hours between full re-evaluations of every segment (the safety net); 0 = never.
    full_refresh_every_hours: float = 6.0
    #: How often the worker looks for queued batch jobs (seconds).
    jobs_poll_seconds: float = 2.0
    #: Hours between scheduled RFM recomputes; 0 = only on request.
    rfm_every_hours: float = 24.0
    #: Hours between scheduled BG/NBD + Gamma-Gamma refits; 0 = only on request.
    clv_fit_every_hours: float = 24.0
    # --- RFM (crm_segment.rfm; docs/segment/rfm.md) ---
    #: Days in the RFM window ending at (and including) ``as_of``.
    rfm_window_days: int = Field(default=365, ge=1, le=3650)
    #: ``quantile`` (cume_dist, ties kept together) or ``thresholds`` (the fixed cuts below).
    rfm_scoring: Literal["quantile", "thresholds"] = "quantile"
    #: Fixed recency cuts: at most this many days earns R5, R4, R3, R2 (more: R1).
    rfm_recency_thresholds: tuple[int, int, int, int] = (30, 90, 180, 270)
    #: Fixed frequency cuts: at least this many orders earns F2, F3, F4, F5 (fewer: F1).
    rfm_frequency_thresholds: tuple[int, int, int, int] = (2, 3, 5, 8)
    #: Fixed monetary cuts (minor units): at least this much earns M2, M3, M4, M5 (less: M1).
    rfm_monetary_thresholds: tuple[int, int, int, int] = (5_000, 10_000, 25_000, 50_000)
    #: ``work_mem`` of the batch's transaction: enough to hash-aggregate the orders and sort
    #: the customers in memory (the server default, 4MB, makes the batch spill to disk).
    rfm_batch_work_mem: str = Field(default="256MB", pattern=r"^[0-9]+(kB|MB|GB)$")

    # --- Lifecycle (crm_segment.lifecycle; docs/segment/scores.md) ---
    #: A one-order customer is ``new`` for this many days after that order.
    lifecycle_new_days: int = Field(default=30, ge=0)
    #: Floor of the at-risk threshold of a repeat customer (days since the last order).
    lifecycle_at_risk_min_days: int = Field(default=30, ge=1)
    #: A repeat customer is ``at_risk`` past this many times their mean inter-purchase interval.
    lifecycle_rhythm_factor: float = Field(default=2.0, gt=0)
    #: At-risk threshold (days) of a customer with a single order (no rhythm yet).
    lifecycle_single_order_at_risk_days: int = Field(default=90, ge=1)
    #: ``dormant`` past this many days since the last order.
    lifecycle_dormant_days: int = Field(default=180, ge=1)
    #: ``churned`` past this many days since the last order.
    lifecycle_churned_days: int = Field(default=365, ge=1)

    #: BG/NBD + Gamma-Gamma: fewer customers with repeat purchases than this fails the fit.
    clv_min_repeat_customers: int = Field(default=20, ge=2)
    #: Monthly discount rate of the 12-month CLV (0.01 = 1 % a month, about 12.7 % a year).
    clv_monthly_discount_rate: float = Field(default=0.01, ge=0, le=1)
    #: Value score weights (normalised by their sum): purchase value, engagement, social.
    value_weight_purchase: float = Field(default=0.6, ge=0)
    value_weight_engagement: float = Field(default=0.3, ge=0)
    value_weight_social: float = Field(default=0.1, ge=0)
    #: Reference levels at which a value-score component reaches 1 (log scale, capped):
    #: net revenue plus predicted 12-month CLV (minor units), engagement interactions in the
    #: last ``value_engagement_days`` days, reviews written (ever).
    value_ref_purchase_minor: int = Field(default=100_000, ge=1)
    value_ref_engagement: int = Field(default=100, ge=1)
    value_ref_social: int = Field(default=5, ge=1)
    value_engagement_days: int = Field(default=90, ge=1)
    #: Clustering: fewer customers with an order than this fails the run.
    cluster_min_customers: int = Field(default=20, ge=9)
    #: Largest sample the silhouette score is computed on when choosing k.
    cluster_silhouette_sample: int = Field(default=10_000, ge=100)

    # --- KPIs (crm_segment.kpis; docs/segment/kpis.md) ---
    #: Most periods one ``GET /v1/kpis`` may ask for (1100 days is about three years).
    kpi_max_periods: int = Field(default=1100, ge=1)


settings = Settings()
