"""``/v1/customers/{external_id}/scores``: everything computed about one customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import error_responses
from crm_segment.scores import service
from crm_segment.scores.errors import CustomerNotFound
from crm_segment.scores.schemas import CustomerScores

router = APIRouter(prefix="/v1", tags=["scores"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]
ExternalIdPath = Annotated[
    str, Path(min_length=1, max_length=255, description="The shop's own customer id")
]


@router.get(
    "/customers/{external_id}/scores",
    response_model=CustomerScores,
    summary="A customer's RFM, lifecycle, churn, CLV, value score and cluster",
    responses=error_responses(CustomerNotFound),
)
async def get_scores(external_id: ExternalIdPath, session: SessionDep, _: Reader) -> CustomerScores:
    """A merged duplicate answers with its survivor's scores (``survivor_external_id``)."""
    return await service.scores_of(session, external_id)
