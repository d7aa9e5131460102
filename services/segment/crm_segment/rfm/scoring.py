"""Scoring a metric value 1-5 from cuts: the batch's quantile boundaries or fixed thresholds.

A *cut* of score ``s`` is the least good value that earns ``s``: for frequency and monetary
(higher is better) the smallest value that earned ``s``, for recency (fewer days is better)
the largest number of days that earned ``s``. Scores are monotone in the value, so a value
scores the best ``s`` whose cut it reaches, and 1 when it reaches none. Applied to the
batch's own values this gives back exactly the batch's quantile scores; applied to a new
value it re-scores one customer against the batch without recomputing everybody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, SmallInteger, case, literal, null

from crm_segment.config import Settings

METRICS = ("recency", "frequency", "monetary")
SCORES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Cuts:
    """The cuts of scores 2, 3, 4, 5 for each metric (``None``: no customer earned it)."""

    recency: tuple[int | None, ...]
    frequency: tuple[int | None, ...]
    monetary: tuple[int | None, ...]

    def of(self, metric: str) -> tuple[int | None, ...]:
        """The cuts of ``metric``."""
        cuts: tuple[int | None, ...] = getattr(self, metric)
        return cuts

    @classmethod
    def from_settings(cls, settings: Settings) -> Cuts:
        """The fixed thresholds configured for the shop."""
        return cls(
            recency=tuple(reversed(settings.rfm_recency_thresholds)),
            frequency=tuple(settings.rfm_frequency_thresholds),
            monetary=tuple(settings.rfm_monetary_thresholds),
        )

    @classmethod
    def from_boundaries(cls, boundaries: dict[str, Any]) -> Cuts:
        """The cuts stored with a batch's boundaries (``rfm_boundaries.boundaries``)."""
        return cls(**{m: tuple(boundaries[m]["cuts"]) for m in METRICS})

    def as_json(self) -> dict[str, list[int | None]]:
        """JSON form (the ``cuts`` of each metric in ``rfm_boundaries``)."""
        return {m: list(self.of(m)) for m in METRICS}


def lower_is_better(metric: str) -> bool:
    """True for recency (days since the last order)."""
    return metric == "recency"


def score_expr(value: ColumnElement[Any], metric: str, cuts: Cuts) -> ColumnElement[int]:
    """SQL: the 1-5 score of ``value`` against ``cuts``; NULL when ``value`` is NULL."""
    whens: list[tuple[ColumnElement[bool], Any]] = [
        (value.is_(None), null()),
    ]
    for score, cut in reversed(list(zip(SCORES[1:], cuts.of(metric), strict=True))):
        if cut is not None:
            reached = value <= cut if lower_is_better(metric) else value >= cut
            whens.append((reached, literal(score, SmallInteger)))
    return case(*whens, else_=literal(1, SmallInteger))
