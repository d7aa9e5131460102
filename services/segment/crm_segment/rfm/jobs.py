"""The ``rfm`` batch job (queued by ``POST /v1/rfm/recompute`` and the daily schedule)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.rfm import service
from crm_segment.rfm.schemas import RecomputeRequest


async def run_rfm(session: AsyncSession, params: dict[str, Any]) -> dict[str, Any]:
    """Recompute RFM, lifecycle, CLV predictions and value scores of every customer."""
    request = RecomputeRequest.model_validate(params)
    return await service.recompute(
        session,
        as_of=request.as_of,
        window_days=request.window_days,
        now=datetime.now(UTC),
        full=request.full,
    )
