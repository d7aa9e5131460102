"""``/v1/kpis``: new, active and churned customers, revenue and rates per period."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from crm_common.auth import ApiKeyPrincipal, require_scopes
from crm_common.db import SessionDep
from crm_common.errors import UnprocessableEntity, error_responses
from crm_segment.kpis import service
from crm_segment.kpis.schemas import Granularity, KpiReport

router = APIRouter(prefix="/v1", tags=["kpis"])
Reader = Annotated[ApiKeyPrincipal, Depends(require_scopes("segment:read"))]


@router.get(
    "/kpis",
    response_model=KpiReport,
    response_model_by_alias=True,
    summary="Shop KPIs per day, week or month",
    responses=error_responses(UnprocessableEntity),
)
async def get_kpis(
    session: SessionDep,
    _: Reader,
    start: Annotated[date, Query(alias="from", description="First day (UTC), included")],
    end: Annotated[date, Query(alias="to", description="Last day (UTC), included")],
    granularity: Annotated[Granularity, Query()] = "month",
) -> KpiReport:
    """Per period: new, active and churned customers, repeat-purchase rate, average order
    value, revenue, refund rate, complaint rate and average predicted CLV."""
    return await service.report(session, start, end, granularity, datetime.now(UTC))
