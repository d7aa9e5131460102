"""``/v1/me``: a customer reads, changes, exports and erases their own profile (customer JWT)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from crm_common.auth import CurrentCustomer
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_profile.customers import service as customers
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.customers.schemas import CustomerPatch
from crm_profile.gdpr import service as gdpr
from crm_profile.gdpr.endpoints import ExportIdPath
from crm_profile.gdpr.errors import ExportNotFound
from crm_profile.gdpr.schemas import ExportJobRead, ExportRead
from crm_profile.me.dependencies import Me
from crm_profile.me.schemas import MePatch, MeRead

router = APIRouter(prefix="/v1/me", tags=["me"])
ME_ERRORS = error_responses(CustomerNotFound, CustomerMerged)


@router.get("", response_model=MeRead, summary="My profile", responses=ME_ERRORS)
async def get_me(me: Me) -> MeRead:
    """The caller's own profile (limited fields)."""
    return MeRead.model_validate(me)


@router.patch("", response_model=MeRead, summary="Change my profile", responses=ME_ERRORS)
async def patch_me(
    me: Me, body: MePatch, session: SessionDep, principal: CurrentCustomer
) -> MeRead:
    """Names, birthday, locale, time zone and city; ``null`` clears one. Email and phone are
    changed through the shop, which owns sign-in and verifies them."""
    fields = CustomerPatch.model_validate(body.model_dump(exclude_unset=True))
    return MeRead.model_validate(await customers.patch(session, me.external_id, fields, principal))


@router.post(
    "/export",
    status_code=202,
    response_model=ExportJobRead,
    summary="Export my data",
    responses=ME_ERRORS,
)
async def export_me(
    me: Me, session: SessionDep, principal: CurrentCustomer, response: Response
) -> ExportJobRead:
    """Starts an export of everything every service holds about the caller."""
    job = await gdpr.request_export(session, me, principal)
    response.headers["Location"] = f"/v1/me/exports/{job.id}"
    return gdpr.summary(job)


@router.get(
    "/exports/{export_id}",
    response_model=ExportRead,
    summary="Read one of my exports",
    responses=error_responses(CustomerNotFound, CustomerMerged, ExportNotFound),
)
async def get_my_export(me: Me, export_id: ExportIdPath, session: SessionDep) -> ExportRead:
    """Only an export of the caller's own data; any other id is a 404."""
    return gdpr.view(await gdpr.get_export(session, export_id, owner=me))


@router.delete(
    "", status_code=204, response_class=Response, summary="Erase me", responses=ME_ERRORS
)
async def erase_me(me: Me, session: SessionDep, principal: CurrentCustomer) -> Response:
    """Erases the caller everywhere, like ``DELETE /v1/customers/{external_id}``."""
    await gdpr.erase(session, me, principal)
    return Response(status_code=204)
