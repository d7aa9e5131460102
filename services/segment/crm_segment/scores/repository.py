"""Reads of one customer's scores."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.models import Cluster, Customer, CustomerScore


async def customer(session: AsyncSession, external_id: str) -> Customer | None:
    """The customer's projection row, if any."""
    return await session.get(Customer, external_id, populate_existing=True)


async def score(session: AsyncSession, external_id: str) -> CustomerScore | None:
    """The customer's score row, if any."""
    return await session.get(CustomerScore, external_id, populate_existing=True)


async def cluster(session: AsyncSession, cluster_id: uuid.UUID) -> Cluster | None:
    """A cluster by id."""
    return await session.get(Cluster, cluster_id)
