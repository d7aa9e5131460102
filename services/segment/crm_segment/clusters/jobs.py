"""The ``clusters`` job: k-means over the customers' behaviour features."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.clusters import service
from crm_segment.clusters.schemas import K_MAX, K_MIN


async def run_clusters(session: AsyncSession, params: dict[str, Any]) -> dict[str, Any]:
    """Job handler: ``params.k`` (2..8, optional: chosen by silhouette when absent) and
    ``params.now`` (ISO time, default now)."""
    k = params.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not K_MIN <= k <= K_MAX):
        raise ValueError(f"params.k must be an integer from {K_MIN} to {K_MAX}, got {k!r}")
    raw = params.get("now")
    now = datetime.fromisoformat(raw) if isinstance(raw, str) else datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("params.now must carry a time zone")
    return await service.run_clusters(session, k, now)
