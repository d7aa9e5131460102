"""``/v1/customers``: create, update, read and list customers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import FieldError, UnprocessableEntity, error_responses
from crm_profile.config import settings
from crm_profile.customers import service
from crm_profile.customers.dependencies import ExternalIdPath, ValidCustomer
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.customers.normalise import normalise_email, normalise_phone
from crm_profile.customers.schemas import CustomerPage, CustomerPatch, CustomerPut, CustomerRead

router = APIRouter(prefix="/v1/customers", tags=["customers"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:write"))]


def _normalised(value: str | None, normalise: Callable[[str], str], field: str) -> str | None:
    """Normalise a filter value as stored values were; 422 naming the parameter otherwise."""
    if value is None:
        return None
    try:
        return normalise(value)
    except ValueError as exc:
        raise UnprocessableEntity(
            str(exc), errors=[FieldError(field=field, reason=str(exc), code="value_error")]
        ) from exc


@router.put(
    "/{external_id}",
    response_model=CustomerRead,
    summary="Create or replace a customer",
    responses={
        **error_responses(CustomerMerged),
        201: {"model": CustomerRead, "description": "Created"},
    },
)
async def put_customer(
    external_id: ExternalIdPath,
    body: CustomerPut,
    session: SessionDep,
    principal: Writer,
    response: Response,
) -> CustomerRead:
    """Creates the customer (201) or replaces every field (200); fields left out are cleared."""
    customer, created = await service.upsert(session, external_id, body, principal)
    response.status_code = 201 if created else 200
    return await service.read(session, customer)


@router.patch(
    "/{external_id}",
    response_model=CustomerRead,
    summary="Change some fields of a customer",
    responses=error_responses(CustomerNotFound, CustomerMerged),
)
async def patch_customer(
    external_id: ExternalIdPath, body: CustomerPatch, session: SessionDep, principal: Writer
) -> CustomerRead:
    """Only the fields sent change; ``null`` clears a field."""
    customer = await service.patch(session, external_id, body, principal)
    return await service.read(session, customer)


@router.get(
    "/{external_id}",
    response_model=CustomerRead,
    summary="Read a customer",
    responses=error_responses(CustomerNotFound),
)
async def get_customer(
    principal: Reader, customer: ValidCustomer, session: SessionDep
) -> CustomerRead:
    """A merged duplicate's id returns its survivor."""
    return await service.read(session, customer)


@router.get("", response_model=CustomerPage, summary="List customers", responses=error_responses())
async def list_customers(
    session: SessionDep,
    principal: Reader,
    email: Annotated[
        str | None, Query(max_length=254, description="Exact address (normalised before matching)")
    ] = None,
    phone: Annotated[
        str | None,
        Query(max_length=32, description="Phone number (normalised to E.164 before matching)"),
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CustomerPage:
    """Active customers in creation order, filtered by email, phone or tag."""
    email_n = _normalised(email, normalise_email, "query.email")
    phone_n = _normalised(
        phone, lambda v: normalise_phone(v, settings.default_phone_region), "query.phone"
    )
    items, next_cursor = await service.list_customers(
        session, email=email_n, phone=phone_n, tag=tag, cursor=cursor, limit=limit
    )
    return CustomerPage(items=items, next_cursor=next_cursor)
