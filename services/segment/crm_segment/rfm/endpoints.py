"""``/v1/rfm``: run the RFM batch; RFM groups at a glance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_segment.jobs import service as jobs
from crm_segment.jobs.schemas import JobRead
from crm_segment.rfm import service
from crm_segment.rfm.schemas import RecomputeRequest, RfmSummary

router = APIRouter(prefix="/v1", tags=["rfm"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:write"))]


@router.post(
    "/rfm/recompute",
    response_model=JobRead,
    status_code=202,
    summary="Recompute RFM scores and groups",
    responses=error_responses(),
)
async def recompute(body: RecomputeRequest, session: SessionDep, _: Writer) -> JobRead:
    """Queue the RFM batch (every customer; lifecycle, CLV and value scores too); poll
    ``GET /v1/jobs/{id}`` for its result."""
    job = await jobs.submit(session, "rfm", body.model_dump(mode="json", exclude_defaults=True))
    return JobRead.model_validate(job)


@router.get(
    "/rfm/summary",
    response_model=RfmSummary,
    summary="RFM groups: size, revenue, averages",
    responses=error_responses(),
)
async def summary(session: SessionDep, _: Reader) -> RfmSummary:
    """Per group: customers, revenue and its share, average recency, frequency, monetary value
    and scores; and the share of revenue from the top 20 % of customers."""
    return await service.summary(session)
