"""Job handlers used by the job runner tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def succeed(session: AsyncSession, params: dict[str, Any]) -> dict[str, Any]:
    """Return what it was given, after a query in the job's transaction."""
    one = (await session.execute(text("SELECT 1"))).scalar_one()
    return {"echo": params, "one": one}


async def fail(session: AsyncSession, params: dict[str, Any]) -> dict[str, Any]:
    """Fail after writing, so the test can check the write was rolled back."""
    await session.execute(
        text("UPDATE segment.job SET params = '{\"touched\": true}' WHERE id = :id"),
        {"id": params["id"]},
    )
    raise RuntimeError("the batch broke")
