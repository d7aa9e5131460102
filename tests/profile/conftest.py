"""Fixtures of the profile service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.events import Envelope, unpack_body
from crm_common.testing import asgi_client
from crm_profile.app import create_app
from crm_profile.models import outbox_table
from tests.conftest import ADMIN_HEADERS


@pytest.fixture(scope="session")
def app() -> FastAPI:
    """The profile API."""
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


async def published(session: AsyncSession, subject: str) -> list[dict[str, Any]]:
    """Payloads this test's transaction put in the outbox under ``subject``, in order.

    ``created_at`` defaults to ``now()``, the transaction's start time, so rows that other
    tests committed (and no relay published yet) are left out.
    """
    rows = await session.execute(
        select(outbox_table.c.payload)
        .where(outbox_table.c.subject == subject, outbox_table.c.created_at == func.now())
        .order_by(outbox_table.c.seq)
    )
    return [orjson.loads(unpack_body(r[0])) for r in rows]


async def put_customer(client: AsyncClient, external_id: str, **fields: Any) -> dict[str, Any]:
    """Create (or replace) a customer and return its body."""
    response = await client.put(f"/v1/customers/{external_id}", json=fields)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def stream_messages(js: Any, subject: str) -> list[Envelope]:
    """Every message stored under ``subject`` (an ephemeral pull consumer from the start)."""
    sub = await js.pull_subscribe(
        subject, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0)
    )
    out = []
    try:
        while True:
            try:
                batch = await sub.fetch(100, timeout=1)
            except TimeoutError:
                break
            for msg in batch:
                out.append(Envelope.from_message(msg.subject, msg.headers, msg.data))
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return out
