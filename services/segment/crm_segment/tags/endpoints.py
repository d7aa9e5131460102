"""``/v1/tag-rules``: derived tags, each a tag plus a rule (``docs/segment/tags.md``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import UnprocessableEntity, error_responses
from crm_segment.tags import service
from crm_segment.tags.errors import TagRuleNameTaken, TagRuleNotFound
from crm_segment.tags.schemas import TAG_PATTERN, TagRuleList, TagRuleRead, TagRuleWrite

router = APIRouter(prefix="/v1", tags=["tags"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]
Writer = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:write"))]
TagPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=TAG_PATTERN,
        description="The tag (1-64 characters of a-z 0-9 _ : -)",
    ),
]


@router.get("/tag-rules", response_model=TagRuleList, responses=error_responses())
async def list_tag_rules(session: SessionDep, principal: Reader) -> TagRuleList:
    """Every tag rule, by tag."""
    rules = await service.list_rules(session)
    return TagRuleList(items=[TagRuleRead.model_validate(r) for r in rules])


@router.get(
    "/tag-rules/{tag}", response_model=TagRuleRead, responses=error_responses(TagRuleNotFound)
)
async def get_tag_rule(tag: TagPath, session: SessionDep, principal: Reader) -> TagRuleRead:
    """One tag rule."""
    return TagRuleRead.model_validate(await service.get_rule(session, tag))


@router.put(
    "/tag-rules/{tag}",
    response_model=TagRuleRead,
    responses={
        201: {"model": TagRuleRead, "description": "Created"},
        **error_responses(TagRuleNameTaken, UnprocessableEntity),
    },
)
async def put_tag_rule(
    tag: TagPath, body: TagRuleWrite, response: Response, session: SessionDep, principal: Writer
) -> TagRuleRead:
    """Create (201) or replace (200) the rule of ``tag``; members are re-evaluated shortly."""
    segment, created = await service.put_rule(session, tag, body, datetime.now(UTC))
    response.status_code = 201 if created else 200
    return TagRuleRead.model_validate(segment)


@router.delete("/tag-rules/{tag}", status_code=204, responses=error_responses(TagRuleNotFound))
async def delete_tag_rule(tag: TagPath, session: SessionDep, principal: Writer) -> Response:
    """Delete the rule of ``tag`` and take the tag off every customer carrying it."""
    await service.delete_rule(session, tag, datetime.now(UTC))
    return Response(status_code=204)
