"""SQL of the value score: one ``INSERT ... SELECT ... ON CONFLICT`` over the batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ARRAY,
    DateTime,
    Double,
    Select,
    SmallInteger,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import CTE

from crm_segment.clv.repository import active_root, qualifying_order
from crm_segment.models import Customer, CustomerScore, InteractionDaily, Order

#: Interaction types that count as engagement.
ENGAGEMENT_TYPES = ("product_view", "app_open", "sign_in", "page_view")
#: Interaction types that count as social contribution: reviews written and referrals that
#: brought a new customer.
SOCIAL_TYPES = ("review_submitted", "referral_converted")


@dataclass(frozen=True)
class Scale:
    """Weights (already normalised to sum 1) and reference levels of the three components."""

    weight_purchase: float
    weight_engagement: float
    weight_social: float
    ref_purchase_minor: int
    ref_engagement: int
    ref_social: int
    engagement_days: int


def _saturating(value: ColumnElement[float], ref: int) -> ColumnElement[float]:
    """``min(1, ln(1 + max(value, 0)) / ln(1 + ref))``."""
    scaled = func.ln(1.0 + func.greatest(value, 0.0)) / math.log1p(ref)
    return func.least(1.0, scaled)


def _universe(external_ids: Sequence[str] | None, buyers: CTE) -> Select[tuple[str]]:
    """The root customers to score: the batch, or every active customer and every root with
    an order (``buyers``: one row per root with any order) or an interaction."""
    if external_ids is not None:
        # distinct: ``ON CONFLICT`` may not meet the same row twice in one statement
        ids = bindparam("ids", value=sorted(set(external_ids)), type_=ARRAY(Text))
        return select(func.unnest(ids).label("id"))
    return select(
        union(
            select(Customer.customer_external_id).where(
                Customer.status == "active",
                Customer.root_external_id == Customer.customer_external_id,
            ),
            select(buyers.c.id),
            select(InteractionDaily.root_external_id),
        ).subquery("everyone")
    )


def _in_batch(
    column: InstrumentedAttribute[str], external_ids: Sequence[str] | None
) -> ColumnElement[bool]:
    """``column`` is one of the batch (always true for ``None`` = everyone)."""
    if external_ids is None:
        return true()
    return column.in_(list(external_ids))


async def write_scores(
    session: AsyncSession, external_ids: Sequence[str] | None, now: datetime, scale: Scale
) -> int:
    """Compute and upsert ``value_score`` of the customers; the number of rows written (a
    customer whose score did not change is not written)."""
    # every root with an order (the universe) and its net revenue of qualifying orders, in
    # one pass over the orders
    revenue = (
        select(
            Order.root_external_id.label("id"),
            func.sum(Order.total_minor - Order.refunded_minor)
            .filter(qualifying_order(now))
            .label("net"),
        )
        .where(_in_batch(Order.root_external_id, external_ids))
        .group_by(Order.root_external_id)
        .cte("revenue")
    )
    ids = _universe(external_ids, revenue).subquery("ids")
    (id_column,) = ids.c
    as_of = now.date()
    since = as_of - timedelta(days=scale.engagement_days)
    engagement = func.sum(InteractionDaily.count).filter(
        InteractionDaily.type.in_(ENGAGEMENT_TYPES), InteractionDaily.day > since
    )
    social = func.sum(InteractionDaily.count).filter(InteractionDaily.type.in_(SOCIAL_TYPES))
    behaviour = (
        select(
            InteractionDaily.root_external_id.label("id"),
            engagement.label("engagement"),
            social.label("social"),
        )
        .where(
            InteractionDaily.day <= as_of,
            InteractionDaily.type.in_(ENGAGEMENT_TYPES + SOCIAL_TYPES),
            _in_batch(InteractionDaily.root_external_id, external_ids),
        )
        .group_by(InteractionDaily.root_external_id)
        .subquery("behaviour")
    )
    purchase_value = cast(func.coalesce(revenue.c.net, 0), Double) + cast(
        func.coalesce(CustomerScore.clv_12m_minor, 0), Double
    )
    score = func.round(
        100.0
        * (
            scale.weight_purchase * _saturating(purchase_value, scale.ref_purchase_minor)
            + scale.weight_engagement
            * _saturating(
                cast(func.coalesce(behaviour.c.engagement, 0), Double), scale.ref_engagement
            )
            + scale.weight_social
            * _saturating(cast(func.coalesce(behaviour.c.social, 0), Double), scale.ref_social)
        )
    )
    value_score = cast(score, SmallInteger)
    # rows whose score is unchanged are not written (the daily batch leaves most alone): not
    # proposed by the SELECT, and the conflict's WHERE re-checks against the locked row
    source = (
        select(id_column, value_score, literal(now, DateTime(timezone=True)))
        .select_from(ids)
        .outerjoin(revenue, revenue.c.id == id_column)
        .outerjoin(behaviour, behaviour.c.id == id_column)
        .outerjoin(CustomerScore, CustomerScore.customer_external_id == id_column)
        .where(
            id_column.is_not(None),
            active_root(id_column),
            or_(
                CustomerScore.customer_external_id.is_(None),
                CustomerScore.value_score.is_distinct_from(value_score),
            ),
        )
    )
    table: Table = CustomerScore.__table__  # type: ignore[assignment]
    stmt = pg_insert(table).from_select(
        ["customer_external_id", "value_score", "computed_at"], source
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_external_id"],
        set_={"value_score": stmt.excluded.value_score, "computed_at": stmt.excluded.computed_at},
        where=table.c.value_score.is_distinct_from(stmt.excluded.value_score),
    )
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]
