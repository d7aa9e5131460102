"""Helpers of the identity tests: ages, keys with narrow scopes, rows written through the models."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import hash_api_key
from crm_common.events import unpack_body
from crm_common.testing import asgi_client
from crm_profile.app import create_app
from crm_profile.config import Settings
from crm_profile.models import (
    BehaviourEvent,
    Consent,
    Customer,
    Order,
    audit_table,
    outbox_table,
)
from tests.profile import conftest as profile_conftest

READ_KEY = "identity-tests-read-key"
WRITE_KEY = "identity-tests-write-key"


_outbox_start = 0


@pytest.fixture(autouse=True)
async def outbox_start(session: AsyncSession) -> None:
    """Remember where the outbox stood when the test began (see :func:`published`)."""
    global _outbox_start
    last = await session.scalar(select(func.max(outbox_table.c.seq)))
    _outbox_start = last or 0


async def published(session: AsyncSession, subject: str) -> list[dict[str, Any]]:
    """Payloads this test put in the outbox under ``subject``, in order.

    Rows that other suites committed and never relayed are left out, so counting "published
    once" is not thrown off by them.
    """
    rows = await session.execute(
        select(outbox_table.c.payload)
        .where(outbox_table.c.subject == subject, outbox_table.c.seq > _outbox_start)
        .order_by(outbox_table.c.seq)
    )
    return [orjson.loads(unpack_body(r[0])) for r in rows]


put_customer = profile_conftest.put_customer


@pytest.fixture(scope="session")
def scoped_app() -> FastAPI:
    """The profile API with a read-only and a write (not admin) key."""
    keys = [
        {"name": "reader", "sha256": hash_api_key(READ_KEY), "scopes": ["profile:read"]},
        {"name": "writer", "sha256": hash_api_key(WRITE_KEY), "scopes": ["profile:write"]},
    ]
    return create_app(Settings(api_keys=keys))


@pytest.fixture
async def reader(scoped_app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Client holding only ``profile:read``."""
    headers = {"Authorization": f"Bearer {READ_KEY}"}
    async with asgi_client(scoped_app, session=session, headers=headers) as c:
        yield c


@pytest.fixture
async def writer(scoped_app: FastAPI, session: AsyncSession) -> AsyncIterator[AsyncClient]:
    """Client holding ``profile:write`` but not ``profile:admin``."""
    headers = {"Authorization": f"Bearer {WRITE_KEY}"}
    async with asgi_client(scoped_app, session=session, headers=headers) as c:
        yield c


async def age(session: AsyncSession, external_id: str, days: int) -> None:
    """Make a customer ``days`` old (rows of one test transaction share ``now()`` otherwise)."""
    await session.execute(
        update(Customer)
        .where(Customer.external_id == external_id)
        .values(created_at=datetime.now(UTC) - timedelta(days=days))
    )


async def customer_row(session: AsyncSession, external_id: str) -> Customer:
    """The stored customer row, fresh."""
    row = (
        await session.execute(
            select(Customer)
            .where(Customer.external_id == external_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return row


async def add_event(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID | None = None,
    anonymous_id: str | None = None,
    customer_external_id: str | None = None,
) -> str:
    """Store a behaviour event as the intake would; its id."""
    event_id = f"ev-{uuid.uuid4()}"
    session.add(
        BehaviourEvent(
            event_id=event_id,
            type="page_view",
            customer_id=customer_id,
            customer_external_id=customer_external_id,
            anonymous_id=anonymous_id,
            occurred_at=datetime.now(UTC),
            properties={},
        )
    )
    await session.flush()
    return event_id


async def add_order(session: AsyncSession, customer: Customer) -> str:
    """Store an order for ``customer`` as the intake would; its external id."""
    external_id = f"o-{uuid.uuid4()}"
    session.add(
        Order(
            external_id=external_id,
            customer_id=customer.id,
            customer_external_id=customer.external_id,
            placed_at=datetime.now(UTC),
            currency="EUR",
            subtotal_minor=1000,
            discount_minor=0,
            shipping_minor=0,
            total_minor=1000,
            content_hash="x",
        )
    )
    await session.flush()
    return external_id


async def add_consent(
    session: AsyncSession,
    customer_id: uuid.UUID,
    status: str,
    *,
    channel: str = "email",
    purpose: str = "marketing",
    days_ago: int = 0,
    source: str = "checkout",
) -> None:
    """Record a customer's current decision directly in the consent table."""
    session.add(
        Consent(
            customer_id=customer_id,
            channel=channel,
            purpose=purpose,
            status=status,
            source=source,
            decided_at=datetime.now(UTC) - timedelta(days=days_ago),
        )
    )
    await session.flush()


async def group_rows(session: AsyncSession, model: Any, survivor_id: uuid.UUID) -> set[str]:
    """Keys of ``model`` rows (events or orders) a read of ``survivor_id``'s group returns."""
    from crm_profile.customers.repository import CustomerRepository

    group = await CustomerRepository(session).group_ids(survivor_id)
    key = model.event_id if model is BehaviourEvent else model.external_id
    rows = await session.execute(select(key).where(model.customer_id.in_(group)))
    return set(rows.scalars())


async def audit_actions(session: AsyncSession, target_id: str) -> list[str]:
    """Audit actions recorded for ``target_id``, oldest first."""
    rows = await session.execute(
        select(audit_table.c.action)
        .where(audit_table.c.target_id == target_id)
        .order_by(audit_table.c.id)
    )
    return list(rows.scalars())


async def count(session: AsyncSession, model: Any, **where: Any) -> int:
    """Rows of ``model`` matching ``where``."""
    stmt = select(func.count()).select_from(model)
    for name, value in where.items():
        stmt = stmt.where(getattr(model, name) == value)
    return int((await session.execute(stmt)).scalar_one())
