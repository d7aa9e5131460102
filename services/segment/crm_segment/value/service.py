"""The value score of customers: 0-100 from purchase value, engagement and social contribution.

``score = round(100 * (w_p * s(net revenue + predicted 12-month CLV, ref_p) + w_e *
s(engagement interactions in the last N days, ref_e) + w_s * s(reviews, ref_s)))`` with the
weights normalised to sum 1 and ``s(v, ref) = min(1, ln(1 + v) / ln(1 + ref))``: a saturating
log scale against fixed reference levels (settings), so one customer's score never depends
on the others'. See ``docs/segment/clv.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import Settings, settings
from crm_segment.value.repository import Scale, write_scores


def scale_from(config: Settings) -> Scale:
    """The weights (normalised) and reference levels from the settings."""
    total = (
        config.value_weight_purchase + config.value_weight_engagement + config.value_weight_social
    )
    if total <= 0:
        raise ValueError("the value score weights must not all be 0")
    return Scale(
        weight_purchase=config.value_weight_purchase / total,
        weight_engagement=config.value_weight_engagement / total,
        weight_social=config.value_weight_social / total,
        ref_purchase_minor=config.value_ref_purchase_minor,
        ref_engagement=config.value_ref_engagement,
        ref_social=config.value_ref_social,
        engagement_days=config.value_engagement_days,
    )


async def score_customers(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime
) -> int:
    """Write the value score of these root customers (``None`` = every customer).

    Skips merged/erased customers; reads ``clv_12m_minor`` from ``customer_score``, so run it
    after :func:`crm_segment.clv.service.predict_customers`. Returns the rows written.
    """
    if external_ids is not None and not external_ids:
        return 0
    return await write_scores(session, external_ids, now, scale_from(settings))
