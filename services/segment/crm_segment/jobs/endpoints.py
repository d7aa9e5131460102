"""``/v1/jobs/{id}``: the state and result of a batch job."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_segment.jobs import service
from crm_segment.jobs.errors import JobNotFound
from crm_segment.jobs.schemas import JobRead

router = APIRouter(prefix="/v1", tags=["jobs"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]


@router.get("/jobs/{job_id}", response_model=JobRead, responses=error_responses(JobNotFound))
async def get_job(job_id: uuid.UUID, session: SessionDep, _: Reader) -> JobRead:
    """A job queued by ``POST /v1/rfm/recompute``, ``/v1/models/fit`` or ``/v1/clusters/run``."""
    return JobRead.model_validate(await service.get(session, job_id))
