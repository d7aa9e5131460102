"""Lifecycle stages as one SQL expression over a customer's lifetime order aggregates.

With ``days`` = time since the last qualifying order (not cancelled, not fully refunded),
evaluated in this order, the first match wins:

1. ``prospect``: no qualifying order ever;
2. ``churned``: ``days > lifecycle_churned_days``;
3. ``dormant``: ``days > lifecycle_dormant_days``;
4. ``at_risk``: ``days`` beyond the customer's own rhythm: with two or more orders,
   ``days > max(lifecycle_at_risk_min_days, lifecycle_rhythm_factor × mean interval)`` where
   the mean inter-purchase interval is ``(last - first) / (orders - 1)``; with a single order
   ``days > lifecycle_single_order_at_risk_days``;
5. ``new``: exactly one order and ``days <= lifecycle_new_days``;
6. ``active``: everybody else.

"Days" are exact elapsed time (a threshold of 30 days is passed 30×24 h after the order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Double, and_, case, func, literal, or_

from crm_segment.config import Settings

STAGES = ("prospect", "new", "active", "at_risk", "dormant", "churned")
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class LifecycleRules:
    """The thresholds of the stages (see the module docstring)."""

    new_days: int
    at_risk_min_days: int
    rhythm_factor: float
    single_order_at_risk_days: int
    dormant_days: int
    churned_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecycleRules:
        """The configured thresholds."""
        return cls(
            new_days=settings.lifecycle_new_days,
            at_risk_min_days=settings.lifecycle_at_risk_min_days,
            rhythm_factor=settings.lifecycle_rhythm_factor,
            single_order_at_risk_days=settings.lifecycle_single_order_at_risk_days,
            dormant_days=settings.lifecycle_dormant_days,
            churned_days=settings.lifecycle_churned_days,
        )

    def as_json(self) -> dict[str, Any]:
        """The thresholds as a JSON object (job results, docs)."""
        return dict(self.__dict__)


def _epoch(interval: ColumnElement[Any]) -> ColumnElement[float]:
    """Seconds in an SQL interval."""
    return func.date_part("epoch", interval, type_=Double)


def stage_expr(
    first_order_at: ColumnElement[Any],
    last_order_at: ColumnElement[Any],
    orders_count: ColumnElement[Any],
    now: datetime,
    rules: LifecycleRules,
) -> ColumnElement[str]:
    """SQL: the lifecycle stage at ``now`` of a customer with these lifetime aggregates."""
    count = func.coalesce(orders_count, 0)
    # nullif: SQL does not promise to test ``count >= 2`` before dividing
    mean_interval = _epoch(last_order_at - first_order_at) / func.nullif(count - 1, 0)
    rhythm_seconds = rules.rhythm_factor * mean_interval
    at_risk_repeat = and_(
        count >= 2,
        _epoch(literal(now) - last_order_at)
        > func.greatest(rules.at_risk_min_days * DAY_SECONDS, rhythm_seconds),
    )
    at_risk_single = and_(
        count == 1, last_order_at < now - timedelta(days=rules.single_order_at_risk_days)
    )
    return case(
        (or_(count == 0, last_order_at.is_(None)), literal("prospect")),
        (last_order_at < now - timedelta(days=rules.churned_days), literal("churned")),
        (last_order_at < now - timedelta(days=rules.dormant_days), literal("dormant")),
        (or_(at_risk_repeat, at_risk_single), literal("at_risk")),
        (
            and_(count == 1, last_order_at >= now - timedelta(days=rules.new_days)),
            literal("new"),
        ),
        else_=literal("active"),
    )


def next_change_expr(
    first_order_at: ColumnElement[Any],
    last_order_at: ColumnElement[Any],
    orders_count: ColumnElement[Any],
    now: datetime,
    rules: LifecycleRules,
) -> ColumnElement[datetime | None]:
    """SQL: when the stage will next change if no order arrives (one second after the
    threshold is passed), NULL for prospects and churned customers; for scheduling."""
    count = func.coalesce(orders_count, 0)
    mean_interval = _epoch(last_order_at - first_order_at) / func.nullif(count - 1, 0)
    rhythm = func.greatest(
        rules.at_risk_min_days * DAY_SECONDS, rules.rhythm_factor * mean_interval
    )
    second = timedelta(seconds=1)
    single = count == 1
    candidates = [
        case((single, last_order_at + timedelta(days=rules.new_days))),
        case((single, last_order_at + timedelta(days=rules.single_order_at_risk_days))),
        case((count >= 2, last_order_at + rhythm * timedelta(seconds=1))),
        last_order_at + timedelta(days=rules.dormant_days),
        last_order_at + timedelta(days=rules.churned_days),
    ]
    upcoming = [case((c + second > now, c + second)) for c in candidates]
    return case((count == 0, None), else_=func.least(*upcoming))
