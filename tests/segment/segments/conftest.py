"""Fixtures of the segments API tests: a client holding only ``segment:read``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import hash_api_key
from crm_common.testing import asgi_client
from crm_segment.app import create_app
from crm_segment.config import Settings

READ_KEY = "segments-tests-read-key"


@pytest.fixture(scope="session")
def reader_app() -> FastAPI:
    """The segment API with a key holding only ``segment:read``."""
    keys = [{"name": "reader", "sha256": hash_api_key(READ_KEY), "scopes": ["segment:read"]}]
    return create_app(Settings(api_keys=keys))


@pytest.fixture
async def reader(reader_app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Client holding only ``segment:read``."""
    async with asgi_client(
        reader_app, session=session, headers={"Authorization": f"Bearer {READ_KEY}"}
    ) as c:
        yield c
