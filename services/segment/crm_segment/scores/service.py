"""Refreshing the scores of a few customers at once, in the evaluator's transaction.

The evaluator calls :func:`refresh_customers` for each batch it takes from the queue, before it
re-evaluates their segments, so that a rule on RFM, lifecycle or CLV sees the order that just
arrived. Every step is set-based over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession


async def refresh_customers(
    session: AsyncSession, external_ids: Sequence[str], now: datetime
) -> None:
    """Recompute order aggregates, RFM (against the stored boundaries), lifecycle, churn/CLV
    (with the stored model fits) and value score of these root customers."""
    # Filled in by the RFM, lifecycle, CLV and value-score parts; each is one set-based step.
    del session, external_ids, now
