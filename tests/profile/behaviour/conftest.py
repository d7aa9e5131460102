"""Helpers of the behaviour intake tests: event factories, stored rows, a read-only client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import hash_api_key
from crm_common.testing import asgi_client
from crm_profile.app import create_app
from crm_profile.config import Settings
from crm_profile.models import BehaviourEvent

READ_KEY = "behaviour-tests-read-key"
INTERACTION = "crm.profile.interaction.recorded"
CUSTOMER_CREATED = "crm.profile.customer.created"


def event(
    type_: str,
    properties: dict[str, Any] | None = None,
    *,
    customer: str | None = "c-ev-1",
    **fields: Any,
) -> dict[str, Any]:
    """One batch item with a fresh event id, happening now, for ``customer``."""
    item: dict[str, Any] = {
        "event_id": f"ev-{uuid.uuid4()}",
        "type": type_,
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    if customer is not None:
        item["customer_external_id"] = customer
    if properties is not None:
        item["properties"] = properties
    item.update(fields)
    return item


async def send(client: AsyncClient, *events: dict[str, Any]) -> Response:
    """``POST /v1/events`` with ``events`` as the batch."""
    return await client.post("/v1/events", json={"events": list(events)})


async def stored(session: AsyncSession, *event_ids: str) -> dict[str, BehaviourEvent]:
    """Stored rows by event id (only those that exist)."""
    rows = await session.execute(
        select(BehaviourEvent)
        .where(BehaviourEvent.event_id.in_(event_ids))
        .execution_options(populate_existing=True)
    )
    return {row.event_id: row for row in rows.scalars()}


@pytest.fixture(scope="session")
def reader_app() -> FastAPI:
    """The profile API with a key holding only ``profile:read``."""
    keys = [{"name": "reader", "sha256": hash_api_key(READ_KEY), "scopes": ["profile:read"]}]
    return create_app(Settings(api_keys=keys))


@pytest.fixture
async def reader(reader_app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Client holding only ``profile:read``."""
    headers = {"Authorization": f"Bearer {READ_KEY}"}
    async with asgi_client(reader_app, session=session, headers=headers) as c:
        yield c
