"""Keys with narrow scopes and customer tokens for the consent tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import hash_api_key
from crm_common.testing import asgi_client, mint_customer_token
from crm_profile.app import create_app
from crm_profile.config import Settings

READ_KEY = "consent-tests-read-key"


@pytest.fixture(scope="session")
def scoped_app() -> FastAPI:
    """The profile API with a read-only key."""
    keys = [{"name": "reader", "sha256": hash_api_key(READ_KEY), "scopes": ["profile:read"]}]
    return create_app(Settings(api_keys=keys))


@pytest.fixture
async def reader(scoped_app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Client holding only ``profile:read``."""
    headers = {"Authorization": f"Bearer {READ_KEY}"}
    async with asgi_client(scoped_app, session=session, headers=headers) as c:
        yield c


def bearer(external_id: str) -> dict[str, str]:
    """Headers carrying a customer token whose subject is ``external_id``."""
    return {"Authorization": f"Bearer {mint_customer_token(external_id)}"}
