"""Per-customer scores: the evaluator's refresh of a batch, and reading one customer's scores.

The evaluator calls :func:`refresh_customers` for each batch it takes from the queue, before it
re-evaluates their segments, so that a rule on RFM, lifecycle or CLV sees the order that just
arrived. Every step is set-based over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.config import settings
from crm_segment.lifecycle.stages import LifecycleRules
from crm_segment.rfm import repository as rfm_repository
from crm_segment.rfm import service as rfm_service
from crm_segment.rfm.repository import Window
from crm_segment.scores import repository
from crm_segment.scores.errors import CustomerNotFound
from crm_segment.scores.schemas import ClusterRef, CustomerScores, OrderTotals, RfmRead


async def refresh_customers(
    session: AsyncSession, external_ids: Sequence[str], now: datetime
) -> None:
    """Recompute order aggregates, RFM (against the stored boundaries), lifecycle, churn/CLV
    (with the stored model fits) and value score of these root customers.

    RFM is taken as of ``now``'s date (UTC) over the last batch's window and scored against
    that batch's cuts (or the fixed thresholds), so one new order moves only its customer.
    Ids that are not scored (a merged duplicate, an id with neither a customer nor an order)
    lose their ``customer_score`` row.
    """
    ids = sorted(set(external_ids))
    if not ids:
        return
    cuts, window_days = await rfm_service.current_cuts(session)
    await rfm_repository.write_scores(
        session,
        window=Window(as_of=now.astimezone(UTC).date(), days=window_days),
        now=now,
        rules=LifecycleRules.from_settings(settings),
        cuts=cuts,
        ids=ids,
    )
    # imported here: CLV needs numpy/scipy, which the API process (that imports this module
    # for its endpoints) should not load
    from crm_segment.clv import service as clv_service
    from crm_segment.value import service as value_service

    await clv_service.predict_customers(session, ids, now)
    await value_service.score_customers(session, ids, now)


async def scores_of(session: AsyncSession, external_id: str) -> CustomerScores:
    """Everything computed about a customer; a merged duplicate answers with its survivor's."""
    customer = await repository.customer(session, external_id)
    survivor = None
    if customer is not None and customer.status != "active":
        survivor = customer.root_external_id
    score = await repository.score(session, survivor or external_id)
    if customer is None and score is None:
        raise CustomerNotFound(f"No customer {external_id!r}")
    if score is None:
        return CustomerScores(
            customer_external_id=external_id,
            survivor_external_id=survivor,
            lifecycle="prospect",
            orders=OrderTotals(count=0, revenue_minor=0),
        )
    cluster = await repository.cluster(session, score.cluster_id) if score.cluster_id else None
    rfm = None
    if score.rfm_score is not None and score.rfm_as_of is not None:
        # a row is not rewritten when only its recency moved: bring it to the latest batch
        as_of = max(score.rfm_as_of, await repository.latest_as_of(session) or score.rfm_as_of)
        rfm = RfmRead(
            as_of=as_of,
            recency_days=(score.recency_days or 0) + (as_of - score.rfm_as_of).days,
            frequency=score.frequency,
            monetary_minor=score.monetary_minor,
            r=score.r,
            f=score.f,
            m=score.m,
            score=score.rfm_score,
            group=score.rfm_group,
        )
    return CustomerScores(
        customer_external_id=external_id,
        survivor_external_id=survivor,
        rfm=rfm,
        lifecycle=score.lifecycle or "prospect",
        lifecycle_changed_at=score.lifecycle_changed_at,
        orders=OrderTotals(
            count=score.orders_count,
            revenue_minor=score.revenue_minor,
            first_order_at=score.first_order_at,
            last_order_at=score.last_order_at,
        ),
        churn_probability=score.churn_probability,
        p_alive=score.p_alive,
        expected_purchases_90d=score.expected_purchases_90d,
        clv_12m_minor=score.clv_12m_minor,
        value_score=score.value_score,
        cluster=ClusterRef(id=cluster.id, label=cluster.label) if cluster else None,
        computed_at=score.computed_at,
    )
