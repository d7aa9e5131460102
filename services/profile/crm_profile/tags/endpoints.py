"""``/v1/customers/{external_id}/tags``: manual tags, and the derived ones alongside."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_profile.customers.dependencies import ExternalIdPath, ValidCustomer
from crm_profile.customers.errors import CustomerNotFound
from crm_profile.tags import service
from crm_profile.tags.errors import TagNotFound
from crm_profile.tags.schemas import TAG_PATTERN, TagItem, TagList

router = APIRouter(prefix="/v1/customers/{external_id}/tags", tags=["tags"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:write"))]
TagPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=TAG_PATTERN, description="1-64 of a-z 0-9 _ - :"),
]


@router.get(
    "",
    response_model=TagList,
    summary="Tags of a customer",
    responses=error_responses(CustomerNotFound),
)
async def list_tags(_: Reader, customer: ValidCustomer, session: SessionDep) -> TagList:
    """Manual and segment tags of the whole merge group, each with its origin."""
    return TagList(items=await service.list_tags(session, customer))


@router.post(
    "/{tag}",
    response_model=TagItem,
    status_code=201,
    summary="Add a manual tag",
    responses={
        **error_responses(CustomerNotFound),
        200: {"model": TagItem, "description": "The customer already had the tag"},
    },
)
async def add_tag(
    _: Writer, external_id: ExternalIdPath, tag: TagPath, session: SessionDep, response: Response
) -> TagItem:
    """201 when added, 200 when the merge group already carried it (nothing changes then)."""
    item, created = await service.add_manual(session, external_id, tag)
    response.status_code = 201 if created else 200
    return item


@router.delete(
    "/{tag}",
    status_code=204,
    summary="Remove a manual tag",
    responses=error_responses(CustomerNotFound, TagNotFound),
)
async def remove_tag(
    _: Writer, external_id: ExternalIdPath, tag: TagPath, session: SessionDep
) -> None:
    """Removes the manual tag from every customer of the merge group; segment tags stay."""
    await service.remove_manual(session, external_id, tag)
