"""Fixtures of the GDPR tests: a key without the admin scope."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import hash_api_key
from crm_common.testing import asgi_client
from crm_profile.app import create_app
from crm_profile.config import Settings

WRITE_KEY = "gdpr-tests-write-key"


@pytest.fixture(scope="session")
def scoped_app() -> FastAPI:
    """The profile API with a write (not admin) key."""
    keys = [{"name": "writer", "sha256": hash_api_key(WRITE_KEY), "scopes": ["profile:write"]}]
    return create_app(Settings(api_keys=keys))


@pytest.fixture
async def writer(scoped_app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Client holding ``profile:write`` but not ``profile:admin``."""
    headers = {"Authorization": f"Bearer {WRITE_KEY}"}
    async with asgi_client(scoped_app, session=session, headers=headers) as c:
        yield c
