"""``/v1/models``: the stored BG/NBD and Gamma-Gamma fits; queueing a refit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_segment.clv import repository
from crm_segment.clv.schemas import ModelFitRead, ModelFits
from crm_segment.jobs import service as jobs
from crm_segment.jobs.schemas import JobRead

router = APIRouter(prefix="/v1", tags=["clv"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:write"))]


@router.get("/models", response_model=ModelFits, responses=error_responses())
async def list_models(session: SessionDep, _: Reader) -> ModelFits:
    """The latest BG/NBD and Gamma-Gamma fits with parameters and diagnostics (empty list
    before the first successful fit)."""
    fits = await repository.latest_fits(session)
    return ModelFits(items=[ModelFitRead.model_validate(f) for f in fits])


@router.post("/models/fit", response_model=JobRead, status_code=202, responses=error_responses())
async def fit_models(session: SessionDep, _: Writer) -> JobRead:
    """Queue a refit of both models on the shop's orders (``GET /v1/jobs/{id}`` for the
    outcome); the worker also refits every ``SEGMENT_CLV_FIT_EVERY_HOURS``."""
    job = await jobs.submit(session, "clv_fit", {})
    return JobRead.model_validate(job)
