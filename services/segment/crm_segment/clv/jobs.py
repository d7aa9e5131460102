"""The ``clv_fit`` job: refit BG/NBD + Gamma-Gamma and predict every customer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.clv import service


async def run_fit(session: AsyncSession, params: dict[str, Any]) -> dict[str, Any]:
    """Job handler: fit both models as of ``params["now"]`` (ISO time; default now) and store
    them with their diagnostics; fails (previous fit kept) with too little data."""
    raw = params.get("now")
    now = datetime.fromisoformat(raw) if isinstance(raw, str) else datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("params.now must carry a time zone")
    return await service.fit_models(session, now)
