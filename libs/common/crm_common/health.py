"""Liveness (``/healthz``) and readiness (``/readyz``: database and NATS reachable)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["Health", "health_router"]

logger = logging.getLogger("crm.health")


class Health(BaseModel):
    """Probe result: overall status and each dependency's."""

    status: str
    checks: dict[str, str] = {}


def health_router() -> APIRouter:
    """Probes read ``app.state.database`` and ``app.state.nats`` set by the service's lifespan."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> Health:
        """The process is up and serving."""
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Health,
        summary="Readiness",
        responses={503: {"model": Health, "description": "A dependency is unreachable"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the database answers and the NATS connection is up."""
        checks = {"database": "ok", "nats": "ok"}
        try:
            await asyncio.wait_for(request.app.state.database.ping(), timeout=2.0)
        except Exception as exc:
            logger.warning("readiness: database unreachable", extra={"error": repr(exc)})
            checks["database"] = "unreachable"
        nc = getattr(request.app.state, "nats", None)
        if nc is None or not nc.is_connected:
            checks["nats"] = "unreachable"
        ok = all(v == "ok" for v in checks.values())
        body = Health(status="ok" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    return router
