"""``GET /v1/customers/{external_id}/timeline``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import FieldError, InvalidCursor, UnprocessableEntity, error_responses
from crm_profile.customers.dependencies import ValidCustomer
from crm_profile.customers.errors import CustomerNotFound
from crm_profile.timeline import service
from crm_profile.timeline.schemas import KINDS, Kind, TimelinePage

router = APIRouter(prefix="/v1/customers/{external_id}/timeline", tags=["timeline"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:read"))]


def _kinds(values: list[str] | None) -> list[Kind]:
    """``types=event,order`` or ``types=event&types=order``; 422 naming ``query.types``."""
    kinds: list[Kind] = []
    for value in values or []:
        for name in filter(None, (v.strip() for v in value.split(","))):
            kind = next((k for k in KINDS if k == name), None)
            if kind is None:
                reason = f"unknown kind {name[:32]!r}; one of {', '.join(KINDS)}"
                raise UnprocessableEntity(
                    reason, errors=[FieldError(field="query.types", reason=reason, code="enum")]
                )
            kinds.append(kind)
    return kinds


@router.get(
    "",
    response_model=TimelinePage,
    summary="Everything that happened to a customer",
    responses=error_responses(CustomerNotFound, InvalidCursor),
)
async def get_timeline(
    _: Reader,
    customer: ValidCustomer,
    session: SessionDep,
    types: Annotated[
        list[str] | None,
        Query(
            max_length=len(KINDS),
            description="Kinds to include, comma-separated or repeated (default: all): "
            + ", ".join(KINDS),
        ),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TimelinePage:
    """Events, orders, status changes, refunds, consent decisions, tag changes, merges: newest first."""
    return await service.timeline(
        session, customer, kinds=_kinds(types), cursor=cursor, limit=limit
    )
