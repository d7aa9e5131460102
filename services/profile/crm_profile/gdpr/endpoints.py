"""GDPR: ``POST /v1/customers/{external_id}/export``, ``GET /v1/exports/{id}``, erasure."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_profile.customers.dependencies import ValidCustomer
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.gdpr import service
from crm_profile.gdpr.errors import ExportNotFound
from crm_profile.gdpr.schemas import ExportJobRead, ExportRead

router = APIRouter(tags=["gdpr"])
# Declared before the customer in every handler, so credentials are checked before the lookup.
Admin = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:admin"))]
ExportIdPath = Annotated[uuid.UUID, Path(description="The export job's id")]


@router.post(
    "/v1/customers/{external_id}/export",
    status_code=202,
    response_model=ExportJobRead,
    summary="Export everything every service holds about a customer",
    responses=error_responses(CustomerNotFound, CustomerMerged),
)
async def export_customer(
    principal: Admin, customer: ValidCustomer, session: SessionDep, response: Response
) -> ExportJobRead:
    """Starts an export job (merged duplicates included); poll ``GET /v1/exports/{id}``."""
    job = await service.request_export(session, customer, principal)
    response.headers["Location"] = f"/v1/exports/{job.id}"
    return service.summary(job)


@router.get(
    "/v1/exports/{export_id}",
    response_model=ExportRead,
    summary="Read an export job and, once done, its document",
    responses=error_responses(ExportNotFound),
)
async def get_export(principal: Admin, export_id: ExportIdPath, session: SessionDep) -> ExportRead:
    """``document`` holds one key per part once ``status`` is ``done``."""
    return service.view(await service.get_export(session, export_id))


@router.delete(
    "/v1/customers/{external_id}",
    status_code=204,
    response_class=Response,
    summary="Erase a customer everywhere",
    responses=error_responses(CustomerNotFound, CustomerMerged),
)
async def erase_customer(
    principal: Admin, customer: ValidCustomer, session: SessionDep
) -> Response:
    """Deletes the customer and every duplicate merged into it; other services follow."""
    await service.erase(session, customer, principal)
    return Response(status_code=204)
