"""Shop KPIs per day, week or month (definitions in docs/segment/kpis.md)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import FieldError, UnprocessableEntity
from crm_segment.config import settings
from crm_segment.kpis import repository
from crm_segment.kpis.schemas import Granularity, KpiReport, PeriodKpis


def period_count(start: date, end: date, granularity: Granularity) -> int:
    """How many periods ``start``..``end`` touches."""
    if granularity == "day":
        return (end - start).days + 1
    if granularity == "week":
        monday = start - timedelta(days=start.weekday())
        return (end - monday).days // 7 + 1
    return (end.year - start.year) * 12 + end.month - start.month + 1


def _check(start: date, end: date, granularity: Granularity) -> None:
    """422 naming the field: ``to`` before ``from``, or too many periods."""
    if end < start:
        raise UnprocessableEntity(
            "to is before from",
            errors=[FieldError(field="query.to", reason="must not be before from", code="range")],
        )
    count, most = period_count(start, end, granularity), settings.kpi_max_periods
    if count > most:
        reason = f"{count} {granularity}s asked for, at most {most}: narrow the range or coarsen"
        raise UnprocessableEntity(
            "range too long",
            errors=[FieldError(field="query.from", reason=reason, code="too_long")],
        )


async def report(
    session: AsyncSession, start: date, end: date, granularity: Granularity, now: datetime
) -> KpiReport:
    """The KPIs of every period from ``start`` to ``end`` (both included)."""
    _check(start, end, granularity)
    rows = await repository.kpis(
        session,
        start=start,
        end=end,
        granularity=granularity,
        churned_days=settings.lifecycle_churned_days,
        now=now,
    )
    periods = [PeriodKpis.model_validate(dict(row._mapping)) for row in rows]
    return KpiReport.model_validate(
        {"from": start, "to": end, "granularity": granularity, "periods": periods}
    )
