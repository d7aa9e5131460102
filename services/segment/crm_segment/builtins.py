"""Built-in segments: one per RFM group, lifecycle stage and cluster, and the default tag rules.

Built-ins are ordinary segments with a ``kind`` other than ``rule`` and a ``key`` naming what
they stand for; their members are materialised and their entries and exits published like
those of any segment. :func:`ensure_builtin_segments` runs when the worker starts (the first
:func:`crm_segment.evaluation.worker.process_queue` of the process): it creates what is
missing and never touches what exists, so a default tag rule that was changed keeps its rule
and one that was deleted stays deleted. New segments start at ``evaluated_version = 0`` and
the same worker loop materialises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.evaluation.service import retire_segment
from crm_segment.models import Cluster, Segment
from crm_segment.rules.fields import LIFECYCLE_STAGES, RFM_GROUPS

#: The default tag rules: tag -> (description, rule). See docs/segment/tags.md.
DEFAULT_TAG_RULES: dict[str, tuple[str, dict[str, Any]]] = {
    "high_value": (
        "Value score 80 or more, or in the RFM champions or loyal group",
        {
            "any": [
                {"field": "value_score", "op": "gte", "value": 80},
                {"field": "rfm.group", "op": "in", "value": ["champions", "loyal"]},
            ]
        },
    ),
    "churn_risk": (
        "Churn probability 0.6 or more, or in the at_risk lifecycle stage",
        {
            "any": [
                {"field": "churn_probability", "op": "gte", "value": 0.6},
                {"field": "lifecycle", "op": "eq", "value": "at_risk"},
            ]
        },
    ),
    "new_product_trier": (
        "Bought an item within 30 days of its launch (in the last ten years)",
        {"orders": {"within_days": 3650, "launched_within_days": 30}},
    ),
    "discount_sensitive": (
        "At least two orders, half of them or more with a discount or coupon",
        {
            "all": [
                {"field": "discount_share", "op": "gte", "value": 0.5},
                {"field": "orders_count", "op": "gte", "value": 2},
            ]
        },
    ),
    "complainer": (
        "Filed a complaint in the last 90 days",
        {"events": {"type": "complaint_filed", "within_days": 90, "count": {"gte": 1}}},
    ),
}


def builtin_definitions() -> list[dict[str, Any]]:
    """Every built-in segment (clusters excepted) as segment row values."""
    rows: list[dict[str, Any]] = []
    for group in RFM_GROUPS:
        rows.append(
            {
                "kind": "rfm",
                "key": group,
                "tag": None,
                "name": f"RFM: {group}",
                "description": f"Customers in the RFM group {group}",
                "rule": {"field": "rfm.group", "op": "eq", "value": group},
            }
        )
    for stage in LIFECYCLE_STAGES:
        rows.append(
            {
                "kind": "lifecycle",
                "key": stage,
                "tag": None,
                "name": f"Lifecycle: {stage}",
                "description": f"Customers in the lifecycle stage {stage}",
                "rule": {"field": "lifecycle", "op": "eq", "value": stage},
            }
        )
    for tag, (description, rule) in DEFAULT_TAG_RULES.items():
        rows.append(tag_segment_values(tag, rule, description))
    return rows


def tag_segment_values(tag: str, rule: dict[str, Any], description: str) -> dict[str, Any]:
    """The segment row of the tag rule ``tag``."""
    return {
        "kind": "tag",
        "key": tag,
        "tag": tag,
        "name": f"Tag: {tag}",
        "description": description,
        "rule": rule,
    }


async def ensure_builtin_segments(session: AsyncSession) -> list[str]:
    """Create the built-in segments and default tag rules that never existed.

    Idempotent by ``(kind, key)``, deleted rows included; safe against a concurrent worker
    doing the same (``ON CONFLICT DO NOTHING``). Returns the names of the segments created.
    """
    wanted = builtin_definitions()
    existing = set(
        (
            await session.execute(
                select(Segment.kind, Segment.key).where(
                    tuple_(Segment.kind, Segment.key).in_([(r["kind"], r["key"]) for r in wanted])
                )
            )
        ).all()
    )
    missing = [r for r in wanted if (r["kind"], r["key"]) not in existing]
    if not missing:
        return []
    stmt = pg_insert(Segment).values(missing).on_conflict_do_nothing().returning(Segment.name)
    return list((await session.execute(stmt)).scalars().all())


async def sync_cluster_segments(session: AsyncSession, clusters: Sequence[Cluster]) -> None:
    """Make the built-in cluster segments those of ``clusters`` (the latest run).

    The previous run's cluster segments are soft-deleted, their members exiting (events
    published in this transaction); one new segment per cluster (``key`` = the cluster's
    index, rule ``cluster_id eq <cluster id>``) is materialised by the worker.
    """
    if not clusters:
        return
    now: datetime = (await session.execute(select(func.now()))).scalar_one()
    ids = {str(c.id) for c in clusters}
    previous = (
        (
            await session.execute(
                select(Segment).where(Segment.kind == "cluster", Segment.deleted_at.is_(None))
            )
        )
        .scalars()
        .all()
    )
    for segment in previous:
        if segment.rule.get("value") not in ids:
            await retire_segment(session, segment, now)
    kept = {s.key for s in previous if s.deleted_at is None}
    for cluster in sorted(clusters, key=lambda c: c.index):
        if str(cluster.index) in kept:
            continue
        session.add(
            Segment(
                kind="cluster",
                key=str(cluster.index),
                name=f"Cluster {cluster.index}: {cluster.label}",
                description=f"Customers of k-means cluster {cluster.index} ({cluster.label})",
                rule={"field": "cluster_id", "op": "eq", "value": str(cluster.id)},
            )
        )
    await session.flush()
