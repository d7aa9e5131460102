"""Per-customer scores and the runs and model fits that produce them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    SmallInteger,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_segment.database import Base


class CustomerScore(Base):
    """Everything computed about one (root) customer; one row per customer with an order or
    a score. Columns are grouped by the part that writes them: order aggregates and RFM
    (``crm_segment.rfm``), lifecycle (``crm_segment.lifecycle``), BG/NBD + Gamma-Gamma and the
    value score (``crm_segment.models_clv``, ``crm_segment.value``), cluster (``crm_segment.clusters``).
    """

    __tablename__ = "customer_score"
    __table_args__ = (
        Index("ix_customer_score_group", "rfm_group"),
        Index("ix_customer_score_lifecycle", "lifecycle"),
        Index("ix_customer_score_cluster", "cluster_id"),
    )

    customer_external_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # lifetime order aggregates (qualifying orders: not cancelled, not fully refunded)
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    orders_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # RFM in the window ending at rfm_as_of
    rfm_as_of: Mapped[date | None] = mapped_column(Date)
    recency_days: Mapped[int | None] = mapped_column(Integer)
    frequency: Mapped[int | None] = mapped_column(Integer)
    monetary_minor: Mapped[int | None] = mapped_column(BigInteger)
    r: Mapped[int | None] = mapped_column(SmallInteger)
    f: Mapped[int | None] = mapped_column(SmallInteger)
    m: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_score: Mapped[str | None] = mapped_column(Text)
    rfm_group: Mapped[str | None] = mapped_column(Text)
    # lifecycle
    lifecycle: Mapped[str | None] = mapped_column(Text)
    lifecycle_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # BG/NBD + Gamma-Gamma
    p_alive: Mapped[float | None] = mapped_column(Double)
    churn_probability: Mapped[float | None] = mapped_column(Double)
    expected_purchases_90d: Mapped[float | None] = mapped_column(Double)
    clv_12m_minor: Mapped[int | None] = mapped_column(BigInteger)
    # value score and cluster
    value_score: Mapped[int | None] = mapped_column(SmallInteger)
    cluster_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Job(Base):
    """A batch run started through the API or the schedule (RFM recompute, model fit, clusters)."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_kind_created", "kind", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    #: ``rfm``, ``clv_fit``, ``clusters``, ``refresh``.
    kind: Mapped[str] = mapped_column(Text)
    #: ``queued``, ``running``, ``succeeded``, ``failed``.
    status: Mapped[str] = mapped_column(Text, default="queued", server_default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RfmBoundaries(Base):
    """The quantile boundaries of the last RFM batch, so one customer can be re-scored alone.

    ``recency`` / ``frequency`` / ``monetary`` hold, for each score 1-5, the metric value range
    that batch gave that score (JSON lists), plus the sorted distinct values with their
    percentile rank, whatever the scoring module needs to score a new value the same way.
    """

    __tablename__ = "rfm_boundaries"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False, default=1)
    as_of: Mapped[date] = mapped_column(Date)
    window_days: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(Text)
    boundaries: Mapped[dict[str, Any]] = mapped_column(JSONB)
    customers: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ModelFit(Base):
    """One maximum-likelihood fit of BG/NBD or Gamma-Gamma with its diagnostics."""

    __tablename__ = "model_fit"
    __table_args__ = (Index("ix_model_fit_kind_fitted", "kind", "fitted_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    #: ``bgnbd`` or ``gamma_gamma``.
    kind: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    diagnostics: Mapped[dict[str, Any]] = mapped_column(JSONB)
    customers: Mapped[int] = mapped_column(Integer)
    fitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Cluster(Base):
    """One cluster of a k-means run, described in original units with a readable label."""

    __tablename__ = "cluster"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    index: Mapped[int] = mapped_column(SmallInteger)
    label: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    #: Feature means / medians in original units, and the centroid in standardised units.
    description: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
