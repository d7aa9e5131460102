"""Fixtures of the orders tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import delete

from crm_common.db import Database
from crm_common.testing import asgi_client
from crm_profile.models import Customer, Order, outbox_table
from tests.conftest import ADMIN_HEADERS


@pytest.fixture
async def committed(
    app: FastAPI, database: Database
) -> AsyncIterator[tuple[AsyncClient, str, str]]:
    """A client whose requests commit (for concurrency), and a unique order and customer id.

    What the test wrote under ids ending in its token is deleted afterwards (orders take their
    lines, history, refunds and keys with them).
    """
    token = uuid.uuid4().hex[:8]
    async with asgi_client(app, headers=ADMIN_HEADERS) as client:
        yield client, f"o-conc-{token}", f"c-conc-{token}"
    async with database.unit_of_work() as s:
        await s.execute(delete(outbox_table).where(outbox_table.c.subject_id.like(f"%{token}")))
        await s.execute(delete(Order).where(Order.external_id.like(f"%{token}")))
        await s.execute(delete(Customer).where(Customer.external_id.like(f"%{token}")))
