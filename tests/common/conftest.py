"""Fixtures for the messaging plumbing tests: a scratch ``plumbing`` schema and stream.

The plumbing tests exercise crm_common with tables of their own (created here, not by a
service's migrations) so they never interfere with a service's outbox or inbox.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crm_common.broker import ensure_stream
from crm_common.db import Database
from crm_common.settings import NatsSettings
from tests.common.plumbing import SCHEMA, metadata


@pytest.fixture(scope="session")
async def plumbing_engine(crm_runtime) -> AsyncIterator[AsyncEngine]:
    """An engine on the session database with the ``plumbing`` schema created."""
    engine = create_async_engine(crm_runtime.database_url, pool_size=5, max_overflow=10)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def plumbing_db(plumbing_engine) -> Database:
    """A :class:`Database` on the plumbing schema's engine."""
    return Database.from_engine(plumbing_engine)


@pytest.fixture(scope="session")
async def js(nats_client, crm_runtime):
    """JetStream with the ``CRM_PLUMBING`` stream (``crm.plumbing.>``) in place."""
    context = nats_client.jetstream()
    await ensure_stream(
        context, SCHEMA, NatsSettings(nats_url=crm_runtime.nats_url, duplicate_window_seconds=120)
    )
    return context


@pytest.fixture
def token() -> str:
    """A subject token unique to the test, so tests never see each other's messages."""
    return "t" + uuid.uuid4().hex[:12]
