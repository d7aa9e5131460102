"""Reads of one customer's scores."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import Cluster, Customer, CustomerScore, RfmBoundaries


async def customer(session: AsyncSession, external_id: str) -> Customer | None:
    """The customer's projection row, if any."""
    return await session.get(Customer, external_id, populate_existing=True)


async def score(session: AsyncSession, external_id: str) -> CustomerScore | None:
    """The customer's score row, if any."""
    return await session.get(CustomerScore, external_id, populate_existing=True)


async def cluster(session: AsyncSession, cluster_id: uuid.UUID) -> Cluster | None:
    """A cluster by id."""
    return await session.get(Cluster, cluster_id)


async def latest_as_of(session: AsyncSession) -> date | None:
    """The reference date of the last RFM batch, if one ran."""
    return (
        await session.execute(select(RfmBoundaries.as_of).where(RfmBoundaries.id == 1))
    ).scalar()
