"""Fixtures and helpers of the segment service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, EventType, unpack_body
from crm_common.testing import asgi_client
from crm_segment.app import create_app
from crm_segment.models import Customer, outbox_table
from tests.conftest import ADMIN_HEADERS


@pytest.fixture(scope="session")
def app() -> FastAPI:
    """The segment API."""
    return create_app()


@pytest.fixture
async def client(app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Admin client whose requests share the test's rolled-back transaction."""
    async with asgi_client(app, session=session, headers=ADMIN_HEADERS) as c:
        yield c


@pytest.fixture
async def anonymous(app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Client without credentials (same transaction)."""
    async with asgi_client(app, session=session) as c:
        yield c


T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    """``T0`` plus ``minutes``: the ``ce-time`` of a test event."""
    return T0 + timedelta(minutes=minutes)


def envelope(
    event: EventType[Any], payload: Any, when: datetime, subject_id: str = "x"
) -> Envelope:
    """``payload`` enveloped by its producer's event type at ``when``."""
    return event.envelope(payload, subject_id=subject_id, time=when)


async def projected(session: AsyncSession, external_id: str) -> Customer | None:
    """The projection row of ``external_id``, fresh from the database."""
    stmt = (
        select(Customer)
        .where(Customer.customer_external_id == external_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def published(session: AsyncSession, subject: str) -> list[dict[str, Any]]:
    """Payloads waiting in segment's outbox under ``subject``, in order."""
    rows = await session.execute(
        select(outbox_table.c.payload, outbox_table.c.subject_id)
        .where(outbox_table.c.subject == subject)
        .order_by(outbox_table.c.seq)
    )
    return [{**orjson.loads(unpack_body(r.payload)), "_subject_id": r.subject_id} for r in rows]
