"""Lifecycle stages (prospect, new, active, at_risk, dormant, churned): see ``stages``.

The RFM batch and the evaluator's refresh stage customers in the same statement that writes
their order aggregates; :func:`restage` only moves customers whose stage changed with time
(no new order), e.g. for a scheduled re-evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.lifecycle import repository
from crm_segment.lifecycle.stages import LifecycleRules


async def restage(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> list[str]:
    """Stage these root customers (None: all) as of ``now``; the ids whose stage changed."""
    ids = None if external_ids is None else sorted(set(external_ids))
    return await repository.restage(session, ids, now, LifecycleRules.from_settings(settings))
