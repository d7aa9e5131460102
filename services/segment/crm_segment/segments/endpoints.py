"""``/v1/segments``: rule segments, previews, members; ``/v1/customers/{id}/segments``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import CrmError, Problem, error_responses
from crm_segment.rules.errors import RuleError
from crm_segment.segments import service
from crm_segment.segments.errors import (
    CustomerNotFound,
    SegmentInUse,
    SegmentNameTaken,
    SegmentNotFound,
    SegmentReadOnly,
)
from crm_segment.segments.schemas import (
    CustomerSegments,
    ExternalId,
    MemberPage,
    MemberRead,
    PreviewRead,
    PreviewRequest,
    SegmentCreate,
    SegmentKind,
    SegmentPage,
    SegmentRead,
    SegmentUpdate,
)

router = APIRouter(prefix="/v1", tags=["segments"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:write"))]
SegmentId = Annotated[uuid.UUID, Path(description="The segment's id")]
Cursor = Annotated[str | None, Query(max_length=512)]
Limit = Annotated[int, Query(ge=1, le=200)]


def _conflicts(*errors: type[CrmError]) -> dict[int | str, dict[str, Any]]:
    """One 409 entry listing every conflict the route can answer with."""
    titles = "; ".join(f"{e.title} ({e.slug})" for e in errors)
    return {409: {"model": Problem, "description": titles}}


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/segments",
    response_model=SegmentRead,
    status_code=201,
    summary="Create a rule segment",
    responses={**error_responses(RuleError), **_conflicts(SegmentNameTaken)},
)
async def create_segment(body: SegmentCreate, session: SessionDep, _: Writer) -> SegmentRead:
    """Saved at version 1; members are materialised by the evaluator shortly after."""
    return SegmentRead.model_validate(await service.create(session, body, now=_now()))


@router.get("/segments", response_model=SegmentPage, summary="List segments")
async def list_segments(
    session: SessionDep,
    _: Reader,
    kind: Annotated[SegmentKind | None, Query()] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> SegmentPage:
    """Live segments (rule, built-in and tag), oldest first."""
    page = await service.list_segments(session, kind=kind, cursor=cursor, limit=limit)
    return SegmentPage(
        items=[SegmentRead.model_validate(s) for s in page.items], next_cursor=page.next_cursor
    )


@router.post(
    "/segments/preview",
    response_model=PreviewRead,
    summary="Count the customers a rule matches now, without saving",
    responses=error_responses(RuleError),
)
async def preview_segment(body: PreviewRequest, session: SessionDep, _: Reader) -> PreviewRead:
    """Evaluated live over active customers."""
    return await service.preview(session, body.rule, now=_now())


@router.get(
    "/segments/{segment_id:uuid}",
    response_model=SegmentRead,
    summary="Read a segment",
    responses=error_responses(SegmentNotFound),
)
async def get_segment(segment_id: SegmentId, session: SessionDep, _: Reader) -> SegmentRead:
    """A live segment with its member count and evaluation state."""
    return SegmentRead.model_validate(await service.get(session, segment_id))


@router.patch(
    "/segments/{segment_id:uuid}",
    response_model=SegmentRead,
    summary="Change a segment",
    responses={
        **error_responses(SegmentNotFound, RuleError),
        **_conflicts(SegmentNameTaken, SegmentReadOnly),
    },
)
async def update_segment(
    segment_id: SegmentId, body: SegmentUpdate, session: SessionDep, _: Writer
) -> SegmentRead:
    """A changed rule bumps ``version``; built-in segments may only be enabled or disabled."""
    return SegmentRead.model_validate(await service.update(session, segment_id, body, now=_now()))


@router.delete(
    "/segments/{segment_id:uuid}",
    status_code=204,
    summary="Delete a rule segment",
    responses={**error_responses(SegmentNotFound), **_conflicts(SegmentInUse, SegmentReadOnly)},
)
async def delete_segment(segment_id: SegmentId, session: SessionDep, _: Writer) -> Response:
    """Soft delete; refused while another segment's rule refers to it."""
    await service.delete(session, segment_id, now=_now())
    return Response(status_code=204)


@router.get(
    "/segments/{segment_id:uuid}/members",
    response_model=MemberPage,
    summary="List a segment's members",
    responses=error_responses(SegmentNotFound),
)
async def list_members(
    segment_id: SegmentId,
    session: SessionDep,
    _: Reader,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> MemberPage:
    """Materialised (root) members by external id."""
    page = await service.members(session, segment_id, cursor=cursor, limit=limit)
    return MemberPage(
        items=[MemberRead.model_validate(m) for m in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/customers/{external_id}/segments",
    response_model=CustomerSegments,
    summary="The segments a customer is in",
    responses=error_responses(CustomerNotFound),
)
async def customer_segments(
    _: Reader,  # first: credentials are checked before the customer is looked up
    external_id: Annotated[ExternalId, Path(description="The shop's own customer id")],
    session: SessionDep,
) -> CustomerSegments:
    """For a merged duplicate, its survivor's segments."""
    return await service.customer_segments(session, external_id)
