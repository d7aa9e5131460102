"""Rows of every profile domain about one customer, written through the models.

The GDPR tests need data in every table without depending on each domain's API; the e2e tests
use the APIs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from httpx import AsyncClient
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_profile.models import (
    BehaviourEvent,
    Consent,
    ConsentHistory,
    Customer,
    CustomerIdentity,
    CustomerTag,
    Merge,
    Order,
    OrderLine,
    OrderStatusChange,
    Refund,
    dead_letter_table,
    metadata,
)
from tests.profile.conftest import put_customer


@dataclass
class Seeded:
    """What was written for one customer."""

    id: uuid.UUID
    external_id: str
    email: str
    phone: str
    anonymous_id: str
    order_id: uuid.UUID


def contact(n: int) -> tuple[str, str]:
    """A distinct email and valid UK phone number for customer ``n``."""
    return f"person{n}@example.com", f"+4420794609{n % 100:02d}"


async def seed(client: AsyncClient, session: AsyncSession, external_id: str, n: int) -> Seeded:
    """A customer (through the API) with identities, consents, tags, events and an order."""
    email, phone = contact(n)
    body = await put_customer(
        client,
        external_id,
        email=email,
        phone=phone,
        first_name=f"First{n}",
        last_name=f"Last{n}",
        birthday="1990-04-02",
        city="Porto",
        country="PT",
    )
    customer_id = uuid.UUID(body["id"])
    now = datetime.now(UTC)
    anonymous_id = f"device-{external_id}"
    order_id = uuid.uuid4()
    session.add_all(
        [
            CustomerIdentity(customer_id=customer_id, kind="anonymous_id", value=anonymous_id),
            Consent(
                customer_id=customer_id,
                channel="email",
                purpose="marketing",
                status="granted",
                source="checkout",
                decided_at=now,
            ),
            ConsentHistory(
                customer_id=customer_id,
                channel="email",
                purpose="marketing",
                status="granted",
                source="checkout",
                decided_at=now,
            ),
            CustomerTag(customer_id=customer_id, tag="vip", origin="manual"),
            BehaviourEvent(
                event_id=f"ev-{external_id}",
                type="product_view",
                customer_id=customer_id,
                customer_external_id=external_id,
                occurred_at=now,
                sku="SKU-1",
                properties={"sku": "SKU-1"},
            ),
            BehaviourEvent(
                event_id=f"ev-anon-{external_id}",
                type="page_view",
                anonymous_id=anonymous_id,
                occurred_at=now - timedelta(days=1),
                properties={"url": "/"},
            ),
            Order(
                id=order_id,
                external_id=f"o-{external_id}",
                customer_id=customer_id,
                customer_external_id=external_id,
                placed_at=now,
                currency="EUR",
                subtotal_minor=3000,
                discount_minor=0,
                shipping_minor=0,
                total_minor=3000,
                refunded_minor=1500,
                coupon_codes=["WELCOME"],
                content_hash="h",
            ),
        ]
    )
    await session.flush()
    session.add_all(
        [
            OrderLine(order_id=order_id, line_no=1, sku="SKU-1", quantity=2, unit_price_minor=1500),
            OrderStatusChange(order_id=order_id, status="paid"),
            Refund(order_id=order_id, amount_minor=1500, lines=[{"sku": "SKU-1", "quantity": 1}]),
        ]
    )
    await session.flush()
    return Seeded(customer_id, external_id, email, phone, anonymous_id, order_id)


async def merge(
    session: AsyncSession, survivor: Seeded, duplicate: Seeded, *, undone: bool = False
) -> uuid.UUID:
    """Fold ``duplicate`` into ``survivor`` as the identity service does (or did and undid)."""
    merge_id = uuid.uuid4()
    session.add(
        Merge(
            id=merge_id,
            survivor_id=survivor.id,
            duplicate_id=duplicate.id,
            rule="manual",
            filled_fields={"city": "Survivor-City"},
            merged_by="key:local-admin",
            undone_at=datetime.now(UTC) if undone else None,
        )
    )
    if not undone:
        await session.execute(
            update(Customer)
            .where(Customer.id == duplicate.id)
            .values(status="merged", merged_into_id=survivor.id)
        )
    await session.flush()
    return merge_id


async def add_dead_letter(session: AsyncSession, subject_id: str, payload: dict[str, Any]) -> None:
    """A dead-lettered message about ``subject_id``."""
    await session.execute(
        insert(dead_letter_table).values(
            consumer="profile-segment-tags",
            subject="crm.segment.tag.changed",
            event_id=str(uuid.uuid4()),
            headers={"ce-subject": subject_id},
            body=orjson.dumps(payload),
            error="boom",
            deliveries=8,
        )
    )


async def counts(session: AsyncSession) -> dict[str, int]:
    """Rows per table of the profile schema."""
    out = {}
    for table in metadata.sorted_tables:
        stmt = select(func.count()).select_from(table)
        out[table.name] = int((await session.execute(stmt)).scalar_one())
    return out


def birthday() -> date:
    """The birthday every seeded customer has."""
    return date(1990, 4, 2)
