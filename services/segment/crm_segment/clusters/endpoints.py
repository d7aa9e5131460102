"""``/v1/clusters``: run k-means over the customers; the latest run's clusters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_segment.clusters import repository
from crm_segment.clusters.schemas import ClusterRead, ClusterRunCreate, ClusterRunRead
from crm_segment.jobs import service as jobs
from crm_segment.jobs.schemas import JobRead

router = APIRouter(prefix="/v1", tags=["clusters"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:write"))]


@router.post("/clusters/run", response_model=JobRead, status_code=202, responses=error_responses())
async def run_clusters(
    session: SessionDep,
    _: Writer,
    body: Annotated[ClusterRunCreate, Body()] = ClusterRunCreate(),
) -> JobRead:
    """Queue a k-means run (``GET /v1/jobs/{id}`` for the outcome)."""
    params = {} if body.k is None else {"k": body.k}
    return JobRead.model_validate(await jobs.submit(session, "clusters", params))


@router.get("/clusters", response_model=ClusterRunRead, responses=error_responses())
async def list_clusters(session: SessionDep, _: Reader) -> ClusterRunRead:
    """The latest run's clusters with their labels, sizes and descriptions."""
    clusters = await repository.latest_run(session)
    if not clusters:
        return ClusterRunRead(
            run_id=None, k=None, silhouette=None, customers=None, created_at=None, clusters=[]
        )
    run = clusters[0].description.get("run", {})
    return ClusterRunRead(
        run_id=clusters[0].run_id,
        k=run.get("k", len(clusters)),
        silhouette=run.get("silhouette"),
        customers=run.get("customers"),
        created_at=clusters[0].created_at,
        clusters=[ClusterRead.model_validate(c) for c in clusters],
    )
