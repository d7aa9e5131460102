"""Identity API: ``/v1/identify``, ``/v1/duplicates``, merging and undoing merges."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import InvalidCursor, error_responses
from crm_profile.customers.dependencies import ExternalIdPath, ValidCustomer
from crm_profile.customers.errors import CustomerMerged, CustomerNotFound
from crm_profile.identity import service
from crm_profile.identity.errors import (
    AlreadyMerged,
    AnonymousIdTaken,
    MergeAlreadyUndone,
    MergeIntoSelf,
    MergeLoop,
    MergeNotFound,
    MergeNotUndoable,
)
from crm_profile.identity.schemas import (
    DuplicatePage,
    IdentifyRequest,
    IdentityRead,
    MergePage,
    MergeRead,
    MergeRequest,
)

router = APIRouter(prefix="/v1", tags=["identity"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:write"))]
Admin = Annotated[ApiKeyPrincipal, Depends(require_scopes("profile:admin"))]
MergeId = Annotated[uuid.UUID, Path(description="Id of the merge")]
Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.post(
    "/identify",
    response_model=IdentityRead,
    status_code=201,
    summary="Link an anonymous id to a customer",
    responses={
        **error_responses(AnonymousIdTaken),
        200: {"model": IdentityRead, "description": "Already linked (nothing changed)"},
    },
)
async def identify(
    body: IdentifyRequest, session: SessionDep, principal: Writer, response: Response
) -> IdentityRead:
    """Behaviour events sent earlier with this anonymous id join the customer's profile."""
    identity, created = await service.identify(
        session, body.customer_external_id, body.anonymous_id
    )
    response.status_code = 201 if created else 200
    return identity


@router.get(
    "/duplicates",
    response_model=DuplicatePage,
    summary="List candidate duplicate customers",
    responses=error_responses(InvalidCursor),
)
async def list_duplicates(
    session: SessionDep, principal: Reader, cursor: Cursor = None, limit: Limit = 50
) -> DuplicatePage:
    """Pairs of active customers with the same normalised email or phone, older one first."""
    return await service.list_duplicates(session, cursor=cursor, limit=limit)


@router.post(
    "/customers/{external_id}/merge",
    response_model=MergeRead,
    status_code=201,
    summary="Merge a duplicate into a customer",
    responses=error_responses(
        CustomerNotFound, MergeIntoSelf, MergeLoop, AlreadyMerged, CustomerMerged
    ),
)
async def merge_customer(
    external_id: ExternalIdPath, body: MergeRequest, session: SessionDep, principal: Admin
) -> MergeRead:
    """The path's customer (its survivor, if it was merged) absorbs the duplicate's group."""
    record = await service.merge(
        session, external_id, body.duplicate_external_id, body.reason, principal
    )
    return await service.view(session, record)


@router.get(
    "/customers/{external_id}/merges",
    response_model=MergePage,
    summary="List the merges of a customer's group",
    responses=error_responses(CustomerNotFound, InvalidCursor),
)
async def list_merges(
    principal: Reader,  # first: credentials are checked before the customer is looked up
    customer: ValidCustomer,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> MergePage:
    """Open and undone merges any member of the group took part in, oldest first."""
    return await service.list_merges(session, customer, cursor=cursor, limit=limit)


@router.get(
    "/merges/{merge_id}",
    response_model=MergeRead,
    summary="Read a merge",
    responses=error_responses(MergeNotFound),
)
async def get_merge(merge_id: MergeId, session: SessionDep, principal: Reader) -> MergeRead:
    """One merge, open or undone."""
    return await service.view(session, await service.get_merge(session, merge_id))


@router.post(
    "/merges/{merge_id}/undo",
    response_model=MergeRead,
    summary="Undo a merge",
    responses=error_responses(MergeNotFound, MergeAlreadyUndone, MergeNotUndoable),
)
async def undo_merge(merge_id: MergeId, session: SessionDep, principal: Admin) -> MergeRead:
    """Both customers are separate again, each with what it received, even since the merge."""
    return await service.view(session, await service.undo(session, merge_id, principal))
