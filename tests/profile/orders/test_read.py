"""``GET /v1/orders/{external_id}`` and ``GET /v1/customers/{external_id}/orders``."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from crm_common.repository import encode_cursor
from crm_profile.models import Customer, Order
from tests.profile.conftest import put_customer
from tests.profile.orders.factories import place


async def merge(session, duplicate: str, survivor: str) -> None:
    """Fold ``duplicate`` into ``survivor`` as the merge does (row kept, status 'merged')."""
    survivor_id = await customer_id(session, survivor)
    await session.execute(
        update(Customer)
        .where(Customer.external_id == duplicate)
        .values(status="merged", merged_into_id=survivor_id)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


async def customer_id(session, external_id: str):
    """The internal id of a customer row."""
    return await session.scalar(select(Customer.id).where(Customer.external_id == external_id))


class TestGetOrder:
    async def test_returns_the_order(self, client):
        placed = await place(client, external_id="o-200")
        response = await client.get("/v1/orders/o-200")
        assert response.status_code == 200
        assert response.json() == placed

    async def test_unknown_order_is_a_404(self, client):
        response = await client.get("/v1/orders/o-missing")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:order-not-found"

    async def test_malformed_id_is_a_422(self, client):
        response = await client.get("/v1/orders/bad id")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.external_id"]

    async def test_needs_credentials(self, anonymous):
        assert (await anonymous.get("/v1/orders/o-200")).status_code == 401


class TestCustomerOrders:
    async def test_newest_first_in_pages(self, client):
        for n, day in enumerate(["2026-01-03", "2026-01-01", "2026-01-02"]):
            await place(client, external_id=f"o-21{n}", placed_at=f"{day}T10:00:00Z")
        await place(client, external_id="o-other", customer_external_id="c-2")
        first = await client.get("/v1/customers/c-1/orders", params={"limit": 2})
        assert first.status_code == 200
        page = first.json()
        assert [o["external_id"] for o in page["items"]] == ["o-210", "o-212"]
        assert page["next_cursor"]
        second = await client.get(
            "/v1/customers/c-1/orders", params={"limit": 2, "cursor": page["next_cursor"]}
        )
        assert [o["external_id"] for o in second.json()["items"]] == ["o-211"]
        assert second.json()["next_cursor"] is None

    async def test_orders_placed_at_the_same_time_are_all_listed(self, client):
        for n in range(3):
            await place(client, external_id=f"o-22{n}", placed_at="2026-01-01T10:00:00Z")
        seen = []
        cursor = None
        while True:
            params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/customers/c-1/orders", params=params)).json()
            seen += [o["external_id"] for o in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert sorted(seen) == ["o-220", "o-221", "o-222"]

    async def test_items_carry_lines_and_history(self, client):
        placed = await place(client, external_id="o-230")
        items = (await client.get("/v1/customers/c-1/orders")).json()["items"]
        assert items == [placed]

    async def test_takes_in_the_merge_group(self, client, session):
        await put_customer(client, "c-surv")
        await put_customer(client, "c-dup")
        await place(
            client,
            external_id="o-240",
            customer_external_id="c-surv",
            placed_at="2026-01-01T10:00:00Z",
        )
        await place(
            client,
            external_id="o-241",
            customer_external_id="c-dup",
            placed_at="2026-01-02T10:00:00Z",
        )
        await merge(session, "c-dup", "c-surv")
        await place(
            client,
            external_id="o-242",
            customer_external_id="c-dup",
            placed_at="2026-01-03T10:00:00Z",
        )
        for path_id in ("c-surv", "c-dup"):
            items = (await client.get(f"/v1/customers/{path_id}/orders")).json()["items"]
            assert [o["external_id"] for o in items] == ["o-242", "o-241", "o-240"]
            # Orders keep the customer they arrived for.
            assert [o["customer_external_id"] for o in items] == ["c-dup", "c-dup", "c-surv"]

    async def test_order_for_a_merged_duplicate_keeps_its_row(self, client, session):
        await put_customer(client, "c-s2")
        await put_customer(client, "c-d2")
        await merge(session, "c-d2", "c-s2")
        await place(client, external_id="o-243", customer_external_id="c-d2")
        order = await session.scalar(select(Order).where(Order.external_id == "o-243"))
        assert order.customer_id == await customer_id(session, "c-d2")

    async def test_customer_without_orders(self, client):
        await put_customer(client, "c-none")
        page = (await client.get("/v1/customers/c-none/orders")).json()
        assert page == {"items": [], "next_cursor": None}

    async def test_unknown_customer_is_a_404(self, client):
        response = await client.get("/v1/customers/c-missing/orders")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"

    @pytest.mark.parametrize(
        "cursor",
        [
            "garbage!",
            encode_cursor(["not-a-date", "x"]),
            encode_cursor([1, 2]),
            encode_cursor(["2026-01-01T10:00:00", "9f4a1c3e-0000-4000-8000-000000000000"]),
            encode_cursor(["2026-01-01T10:00:00+00:00"]),
        ],
    )
    async def test_foreign_cursor_is_a_400(self, client, cursor):
        await place(client, external_id="o-250")
        response = await client.get("/v1/customers/c-1/orders", params={"cursor": cursor})
        assert response.status_code == 400
        assert response.json()["type"] == "urn:crm:problem:invalid-cursor"

    @pytest.mark.parametrize("limit", [0, 201, "many"])
    async def test_bad_limit_is_a_422(self, client, limit):
        await place(client, external_id="o-251")
        response = await client.get("/v1/customers/c-1/orders", params={"limit": limit})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["query.limit"]

    async def test_needs_credentials(self, anonymous):
        assert (await anonymous.get("/v1/customers/c-1/orders")).status_code == 401
