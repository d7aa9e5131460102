"""Order bodies and helpers shared by the orders tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.profile.conftest import published

PLACED = "crm.profile.order.placed"
STATUS_CHANGED = "crm.profile.order.status_changed"
REFUNDED = "crm.profile.order.refunded"
CUSTOMER_CREATED = "crm.profile.customer.created"

#: Two lines: 2 × 1500 + 1 × 4000 = 7000; − 700 discount + 499 shipping = 6799.
BASE: dict[str, Any] = {
    "external_id": "o-1",
    "customer_external_id": "c-1",
    "currency": "EUR",
    "lines": [
        {"sku": "TSHIRT-M", "quantity": 2, "unit_price_minor": 1500, "category": "apparel"},
        {"sku": "JACKET-L", "quantity": 1, "unit_price_minor": 4000},
    ],
    "discount_minor": 700,
    "shipping_minor": 499,
    "total_minor": 6799,
    "channel": "web",
    "coupon_codes": ["WELCOME10"],
    "points_redeemed": 0,
}


#: One instant for every order body, so two bodies built apart are the same content.
PLACED_AT = (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def order_body(**overrides: Any) -> dict[str, Any]:
    """A valid order (placed about an hour ago) with ``overrides`` applied."""
    body = copy.deepcopy(BASE)
    body["placed_at"] = PLACED_AT
    body.update(overrides)
    return body


async def place(client: AsyncClient, **overrides: Any) -> dict[str, Any]:
    """Record an order and return its body."""
    response = await client.post("/v1/orders", json=order_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


async def set_status(client: AsyncClient, external_id: str, status: str) -> dict[str, Any]:
    """Move an order to ``status``."""
    response = await client.post(f"/v1/orders/{external_id}/status", json={"status": status})
    assert response.status_code == 200, response.text
    return response.json()


async def events(
    session: AsyncSession, subject: str, order_external_id: str
) -> list[dict[str, Any]]:
    """Payloads waiting in the outbox under ``subject`` for one order."""
    return [
        p for p in await published(session, subject) if p["order_external_id"] == order_external_id
    ]


def field_names(response: Any) -> list[str]:
    """The ``field`` of each entry of a problem's ``errors``."""
    return [e["field"] for e in response.json()["errors"]]
