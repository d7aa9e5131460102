"""SQL of the clusters part: behaviour features per customer, runs, assignments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    Date,
    DateTime,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.clv.repository import active_root, qualifying_order
from crm_segment.models import Cluster, Customer, CustomerScore, InteractionDaily, Order, OrderLine

#: The features, in the order of the matrix columns.
FEATURES = (
    "recency_days",
    "frequency",
    "monetary_minor",
    "average_order_minor",
    "category_breadth",
    "tenure_days",
    "engagement",
)
#: Engagement = interactions of any type in this many days up to ``now``.
ENGAGEMENT_DAYS = 90


class FeatureRow(NamedTuple):
    """One root customer's features, in the order of :data:`FEATURES`."""

    id: str
    recency_days: int
    frequency: int
    monetary_minor: int
    average_order_minor: float
    category_breadth: int
    tenure_days: int
    engagement: int


async def features(session: AsyncSession, now: datetime) -> list[FeatureRow]:
    """The behaviour features of every active root customer with a qualifying order, as of
    ``now`` (set-based: three grouped subqueries joined on the customer).

    recency = days from the last order's UTC date to ``now``'s; frequency = qualifying orders;
    monetary = their net total (minus refunds); average order = monetary / frequency;
    category breadth = distinct categories on their lines; tenure = days since the earlier of
    registration and first order; engagement = interactions in the last 90 days.
    """
    as_of = now.date()
    order_day = func.date(func.timezone("UTC", Order.placed_at))
    orders = (
        select(
            Order.root_external_id.label("id"),
            func.max(order_day).label("last_day"),
            func.min(order_day).label("first_day"),
            func.count().label("frequency"),
            func.sum(Order.total_minor - Order.refunded_minor).label("monetary"),
        )
        .where(qualifying_order(now), active_root(Order.root_external_id))
        .group_by(Order.root_external_id)
        .subquery("orders")
    )
    breadth = (
        select(
            Order.root_external_id.label("id"),
            func.count(OrderLine.category.distinct()).label("breadth"),
        )
        .join(OrderLine, OrderLine.order_external_id == Order.order_external_id)
        .where(qualifying_order(now), OrderLine.category.is_not(None), OrderLine.category != "")
        .group_by(Order.root_external_id)
        .subquery("breadth")
    )
    engagement = (
        select(
            InteractionDaily.root_external_id.label("id"),
            func.sum(InteractionDaily.count).label("engagement"),
        )
        .where(
            InteractionDaily.day > as_of - timedelta(days=ENGAGEMENT_DAYS),
            InteractionDaily.day <= as_of,
        )
        .group_by(InteractionDaily.root_external_id)
        .subquery("engagement")
    )
    registered = func.date(func.timezone("UTC", Customer.registered_at))
    start = func.least(orders.c.first_day, func.coalesce(registered, orders.c.first_day))
    today = cast(literal(as_of), Date)
    stmt = (
        select(
            orders.c.id,
            (today - orders.c.last_day).label("recency"),
            orders.c.frequency,
            orders.c.monetary,
            func.coalesce(breadth.c.breadth, 0).label("breadth"),
            (today - start).label("tenure"),
            func.coalesce(engagement.c.engagement, 0).label("engagement"),
        )
        .select_from(orders)
        .outerjoin(breadth, breadth.c.id == orders.c.id)
        .outerjoin(engagement, engagement.c.id == orders.c.id)
        .outerjoin(Customer, Customer.customer_external_id == orders.c.id)
        .order_by(orders.c.id)
    )
    rows = (await session.execute(stmt)).all()
    return [
        FeatureRow(
            r.id,
            r.recency,
            r.frequency,
            r.monetary,
            r.monetary / r.frequency,
            r.breadth,
            r.tenure,
            r.engagement,
        )
        for r in rows
    ]


async def add_clusters(session: AsyncSession, clusters: Sequence[Cluster]) -> None:
    """Store a run's clusters."""
    session.add_all(clusters)
    await session.flush()


async def assign(
    session: AsyncSession, ids: Sequence[str], cluster_ids: Sequence[uuid.UUID], now: datetime
) -> None:
    """Set ``customer_score.cluster_id`` of the customers (one upsert over parallel arrays)
    and clear it for every customer not in this run."""

    def array(name: str, values: list[Any], item: Any) -> Any:
        return func.unnest(bindparam(name, value=values, type_=ARRAY(item)))

    source = select(
        array("ids", list(ids), Text),
        array("clusters", list(cluster_ids), Uuid),
        literal(now, DateTime(timezone=True)),
    )
    table: Table = CustomerScore.__table__  # type: ignore[assignment]
    stmt = pg_insert(table).from_select(
        ["customer_external_id", "cluster_id", "computed_at"], source
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["customer_external_id"],
        set_={"cluster_id": stmt.excluded.cluster_id, "computed_at": stmt.excluded.computed_at},
    )
    await session.execute(stmt)
    current = sorted(set(cluster_ids))
    await session.execute(
        update(CustomerScore)
        .where(
            CustomerScore.cluster_id.is_not(None),
            CustomerScore.cluster_id.not_in(current),
        )
        .values(cluster_id=None, computed_at=now)
    )


async def latest_run(session: AsyncSession) -> list[Cluster]:
    """The clusters of the most recent run, by index (empty before the first run)."""
    last = select(Cluster.run_id).order_by(Cluster.created_at.desc()).limit(1).scalar_subquery()
    stmt = select(Cluster).where(Cluster.run_id == last).order_by(Cluster.index)
    return list((await session.execute(stmt)).scalars())
