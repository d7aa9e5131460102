"""``POST /v1/orders``: validation, totals, customer resolution, idempotency, the placed event."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_profile.models import Customer, Order, outbox_table
from tests.profile.conftest import published, put_customer
from tests.profile.orders.factories import (
    CUSTOMER_CREATED,
    PLACED,
    events,
    field_names,
    order_body,
    place,
)


class TestPlaceOrder:
    async def test_needs_credentials(self, anonymous):
        response = await anonymous.post("/v1/orders", json=order_body())
        assert response.status_code == 401

    async def test_records_the_whole_order(self, client, session):
        body = order_body(external_id="o-100")
        response = await client.post("/v1/orders", json=body)
        assert response.status_code == 201
        order = response.json()
        assert order["external_id"] == "o-100"
        assert order["customer_external_id"] == "c-1"
        assert order["currency"] == "EUR"
        assert order["subtotal_minor"] == 7000
        assert order["discount_minor"] == 700
        assert order["shipping_minor"] == 499
        assert order["total_minor"] == 6799
        assert order["refunded_minor"] == 0
        assert order["status"] == "placed"
        assert order["channel"] == "web"
        assert order["coupon_codes"] == ["WELCOME10"]
        assert order["points_redeemed"] == 0
        assert order["lines"] == [
            {
                "sku": "TSHIRT-M",
                "quantity": 2,
                "unit_price_minor": 1500,
                "category": "apparel",
                "refunded_quantity": 0,
            },
            {
                "sku": "JACKET-L",
                "quantity": 1,
                "unit_price_minor": 4000,
                "category": None,
                "refunded_quantity": 0,
            },
        ]
        placed_at = datetime.fromisoformat(body["placed_at"])
        assert datetime.fromisoformat(order["placed_at"]) == placed_at
        assert [h["status"] for h in order["status_history"]] == ["placed"]
        assert datetime.fromisoformat(order["status_history"][0]["changed_at"]) == placed_at
        assert order["id"] and order["created_at"] and order["updated_at"]

    async def test_publishes_order_placed_once(self, client, session):
        order = await place(client, external_id="o-101", points_redeemed=250)
        payloads = await events(session, PLACED, "o-101")
        assert len(payloads) == 1
        event = payloads[0]
        assert event["order_id"] == order["id"]
        assert event["customer_external_id"] == "c-1"
        assert event["currency"] == "EUR"
        assert event["subtotal_minor"] == 7000
        assert event["total_minor"] == 6799
        assert event["points_redeemed"] == 250
        assert event["coupon_codes"] == ["WELCOME10"]
        assert event["channel"] == "web"
        assert event["lines"][0] == {
            "sku": "TSHIRT-M",
            "quantity": 2,
            "unit_price_minor": 1500,
            "category": "apparel",
        }
        assert datetime.fromisoformat(event["placed_at"]) == datetime.fromisoformat(
            order["placed_at"]
        )

    async def test_unknown_customer_is_created_bare(self, client, session):
        await place(client, external_id="o-102", customer_external_id="c-new")
        customer = await session.scalar(select(Customer).where(Customer.external_id == "c-new"))
        assert customer is not None
        assert customer.status == "active"
        created = [
            p
            for p in await published(session, CUSTOMER_CREATED)
            if p["customer_external_id"] == "c-new"
        ]
        assert len(created) == 1

    async def test_known_customer_is_used(self, client, session):
        customer = await put_customer(client, "c-known", email="known@example.com")
        await place(client, external_id="o-103", customer_external_id="c-known")
        order = await session.scalar(select(Order).where(Order.external_id == "o-103"))
        assert str(order.customer_id) == customer["id"]
        created = [
            p
            for p in await published(session, CUSTOMER_CREATED)
            if p["customer_external_id"] == "c-known"
        ]
        assert len(created) == 1  # by the PUT, not again by the order

    async def test_placed_at_is_stored_in_utc(self, client):
        order = await place(client, external_id="o-104", placed_at="2026-01-10T12:00:00+02:00")
        assert datetime.fromisoformat(order["placed_at"]) == datetime(2026, 1, 10, 10, tzinfo=UTC)
        assert order["placed_at"].endswith(("Z", "+00:00"))

    async def test_placed_at_within_clock_skew_is_accepted(self, client):
        soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
        await place(client, external_id="o-105", placed_at=soon)

    async def test_optional_fields_default(self, client):
        body = order_body(external_id="o-106")
        for field in ("channel", "coupon_codes", "points_redeemed"):
            del body[field]
        body["lines"] = [{"sku": "A", "quantity": 1, "unit_price_minor": 0}]
        body.update(discount_minor=0, shipping_minor=0, total_minor=0)
        response = await client.post("/v1/orders", json=body)
        assert response.status_code == 201
        order = response.json()
        assert (order["channel"], order["coupon_codes"], order["points_redeemed"]) == (None, [], 0)
        assert order["total_minor"] == 0

    async def test_the_same_sku_may_appear_on_two_lines(self, client):
        lines = [
            {"sku": "A", "quantity": 1, "unit_price_minor": 1000},
            {"sku": "A", "quantity": 1, "unit_price_minor": 0, "category": "gift"},
        ]
        order = await place(
            client,
            external_id="o-107",
            lines=lines,
            discount_minor=0,
            shipping_minor=0,
            total_minor=1000,
        )
        assert [line["sku"] for line in order["lines"]] == ["A", "A"]

    async def test_five_hundred_lines_are_accepted(self, client):
        lines = [{"sku": f"SKU-{i}", "quantity": 1, "unit_price_minor": 100} for i in range(500)]
        order = await place(
            client,
            external_id="o-108",
            lines=lines,
            discount_minor=0,
            shipping_minor=0,
            total_minor=50_000,
        )
        assert len(order["lines"]) == 500


class TestTotals:
    async def test_total_that_does_not_add_up_names_the_expected_value(self, client, session):
        response = await client.post(
            "/v1/orders", json=order_body(external_id="o-110", total_minor=6800)
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert field_names(response) == ["body.total_minor"]
        assert "expected 6799" in response.json()["errors"][0]["reason"]
        assert await events(session, PLACED, "o-110") == []

    async def test_shipping_is_added_and_discount_subtracted(self, client):
        response = await client.post(
            "/v1/orders", json=order_body(shipping_minor=0, discount_minor=0, total_minor=6799)
        )
        assert field_names(response) == ["body.total_minor"]
        assert "expected 7000" in response.json()["errors"][0]["reason"]

    async def test_discount_above_subtotal(self, client):
        response = await client.post(
            "/v1/orders", json=order_body(discount_minor=7001, total_minor=-502)
        )
        assert response.status_code == 422
        assert "body.discount_minor" in field_names(response)
        reason = next(e for e in response.json()["errors"] if e["field"] == "body.discount_minor")
        assert "7000" in reason["reason"]

    async def test_discount_equal_to_subtotal_is_allowed(self, client):
        await place(client, external_id="o-111", discount_minor=7000, total_minor=499)

    async def test_subtotal_beyond_the_money_limit(self, client):
        lines = [
            {"sku": f"S{i}", "quantity": 100_000, "unit_price_minor": 10**12} for i in range(20)
        ]
        response = await client.post("/v1/orders", json=order_body(lines=lines, total_minor=0))
        assert response.status_code == 422
        assert field_names(response) == ["body.lines"]


class TestInvalidOrder:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("currency", "eur"),
            ("currency", "XYZ"),
            ("currency", "EURO"),
            ("currency", "HRK"),
            ("currency", 978),
            ("placed_at", "2026-01-01T00:00:00"),
            ("placed_at", "yesterday"),
            ("placed_at", "2999-01-01T00:00:00Z"),
            ("channel", "fax"),
            ("lines", []),
            ("lines", "TSHIRT"),
            ("discount_minor", -1),
            ("shipping_minor", -5),
            ("total_minor", -1),
            ("total_minor", "6799"),
            ("total_minor", 6799.5),
            ("discount_minor", True),
            ("points_redeemed", -1),
            ("points_redeemed", "ten"),
            ("coupon_codes", ["C"] * 21),
            ("coupon_codes", ["SAME", "SAME"]),
            ("coupon_codes", [""]),
            ("coupon_codes", ["X" * 65]),
            ("coupon_codes", "WELCOME10"),
            ("external_id", ""),
            ("external_id", "has space"),
            ("external_id", "x" * 129),
            ("customer_external_id", None),
            ("customer_external_id", 42),
        ],
    )
    async def test_invalid_field_is_a_422_naming_it(self, client, session, field, value):
        body = order_body(external_id="o-bad")
        body[field] = value
        response = await client.post("/v1/orders", json=body)
        assert response.status_code == 422, response.text
        [name] = field_names(response)  # the field itself, or one of its items
        assert name == f"body.{field}" or name.startswith(f"body.{field}[")
        assert (
            await session.scalar(select(Order).where(Order.external_id == body["external_id"]))
            is None
        )

    @pytest.mark.parametrize(
        ("line", "field"),
        [
            ({"quantity": 0}, "quantity"),
            ({"quantity": -2}, "quantity"),
            ({"quantity": "2"}, "quantity"),
            ({"quantity": 1.5}, "quantity"),
            ({"quantity": 100_001}, "quantity"),
            ({"unit_price_minor": -1}, "unit_price_minor"),
            ({"unit_price_minor": "15.00"}, "unit_price_minor"),
            ({"sku": ""}, "sku"),
            ({"sku": None}, "sku"),
            ({"category": ""}, "category"),
            ({"colour": "red"}, "colour"),
        ],
    )
    async def test_invalid_line_names_the_line_field(self, client, line, field):
        body = order_body()
        body["lines"][1].update(line)
        response = await client.post("/v1/orders", json=body)
        assert response.status_code == 422
        assert field_names(response) == [f"body.lines[1].{field}"]

    async def test_line_without_a_price(self, client):
        body = order_body()
        del body["lines"][0]["unit_price_minor"]
        response = await client.post("/v1/orders", json=body)
        assert field_names(response) == ["body.lines[0].unit_price_minor"]

    async def test_too_many_lines(self, client):
        lines = [{"sku": f"S{i}", "quantity": 1, "unit_price_minor": 1} for i in range(501)]
        response = await client.post(
            "/v1/orders",
            json=order_body(lines=lines, discount_minor=0, shipping_minor=0, total_minor=501),
        )
        assert field_names(response) == ["body.lines"]

    async def test_unknown_field_is_refused(self, client):
        response = await client.post("/v1/orders", json=order_body(gift_wrap=True))
        assert response.status_code == 422
        assert field_names(response) == ["body.gift_wrap"]
        assert response.json()["errors"][0]["code"] == "extra_forbidden"

    @pytest.mark.parametrize(
        "field",
        [
            "external_id",
            "customer_external_id",
            "placed_at",
            "currency",
            "lines",
            "discount_minor",
            "shipping_minor",
            "total_minor",
        ],
    )
    async def test_required_field_missing(self, client, field):
        body = order_body()
        del body[field]
        response = await client.post("/v1/orders", json=body)
        assert response.status_code == 422
        assert f"body.{field}" in field_names(response)

    async def test_body_that_is_not_json_is_a_400(self, client):
        response = await client.post(
            "/v1/orders", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400

    async def test_body_that_is_not_an_object(self, client):
        response = await client.post("/v1/orders", json=[order_body()])
        assert response.status_code == 422


class TestOrderIdempotency:
    async def test_same_content_again_returns_the_order_and_publishes_nothing(
        self, client, session
    ):
        body = order_body(external_id="o-120")
        first = await client.post("/v1/orders", json=body)
        again = await client.post("/v1/orders", json=body)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert len(await events(session, PLACED, "o-120")) == 1

    async def test_same_content_in_another_form_is_the_same(self, client, session):
        body = order_body(external_id="o-121", placed_at="2026-01-10T12:00:00+02:00")
        assert (await client.post("/v1/orders", json=body)).status_code == 201
        same = dict(body, placed_at="2026-01-10T10:00:00Z")
        del same["points_redeemed"]  # the default, 0
        assert (await client.post("/v1/orders", json=same)).status_code == 200
        assert len(await events(session, PLACED, "o-121")) == 1

    async def test_replay_shows_the_order_as_it_is_now(self, client):
        body = order_body(external_id="o-122")
        await client.post("/v1/orders", json=body)
        await client.post("/v1/orders/o-122/status", json={"status": "paid"})
        again = await client.post("/v1/orders", json=body)
        assert again.status_code == 200
        assert again.json()["status"] == "paid"

    async def test_different_content_is_a_409_naming_what_differs(self, client, session):
        await place(client, external_id="o-123")
        lines = order_body()["lines"]
        lines[0]["quantity"] = 3
        response = await client.post(
            "/v1/orders", json=order_body(external_id="o-123", lines=lines, total_minor=8299)
        )
        assert response.status_code == 409
        problem = response.json()
        assert problem["type"] == "urn:crm:problem:order-conflict"
        assert "o-123" in problem["detail"]
        assert field_names(response) == ["body.lines", "body.total_minor"]
        assert len(await events(session, PLACED, "o-123")) == 1
        stored = await client.get("/v1/orders/o-123")
        assert stored.json()["total_minor"] == 6799

    async def test_another_customer_is_a_conflict(self, client):
        await place(client, external_id="o-124")
        response = await client.post(
            "/v1/orders", json=order_body(external_id="o-124", customer_external_id="c-2")
        )
        assert response.status_code == 409
        assert field_names(response) == ["body.customer_external_id"]


class TestIdempotencyKey:
    async def test_same_key_and_body_returns_the_same_order(self, client, session):
        body = order_body(external_id="o-130")
        headers = {"Idempotency-Key": "key-130"}
        first = await client.post("/v1/orders", json=body, headers=headers)
        again = await client.post("/v1/orders", json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert len(await events(session, PLACED, "o-130")) == 1

    async def test_same_key_with_another_body_is_a_409(self, client, session):
        headers = {"Idempotency-Key": "key-131"}
        await client.post("/v1/orders", json=order_body(external_id="o-131"), headers=headers)
        response = await client.post(
            "/v1/orders", json=order_body(external_id="o-132"), headers=headers
        )
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:idempotency-key-reused"
        assert field_names(response) == ["header.Idempotency-Key"]
        assert (await client.get("/v1/orders/o-132")).status_code == 404
        assert await events(session, PLACED, "o-132") == []

    async def test_a_key_may_be_added_to_a_repeat(self, client):
        body = order_body(external_id="o-133")
        await client.post("/v1/orders", json=body)
        keyed = await client.post("/v1/orders", json=body, headers={"Idempotency-Key": "key-133"})
        assert keyed.status_code == 200
        other = await client.post(
            "/v1/orders",
            json=order_body(external_id="o-134"),
            headers={"Idempotency-Key": "key-133"},
        )
        assert other.status_code == 409

    @pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\there"])
    async def test_malformed_key_is_a_422(self, client, key):
        response = await client.post(
            "/v1/orders", json=order_body(), headers={"Idempotency-Key": key}
        )
        assert response.status_code == 422
        assert field_names(response) == ["header.Idempotency-Key"]


class TestConcurrentSubmissions:
    """Committed requests at the same time: the unique keys decide, the loser compares content."""

    async def test_the_same_order_twice_at_once_is_recorded_once(self, committed, database):
        client, order_id, customer_id = committed
        body = order_body(external_id=order_id, customer_external_id=customer_id)
        results = await asyncio.gather(
            client.post("/v1/orders", json=body), client.post("/v1/orders", json=body)
        )
        assert sorted(r.status_code for r in results) == [200, 201]
        assert results[0].json()["id"] == results[1].json()["id"]
        async with database.unit_of_work() as s:
            rows = await s.execute(
                select(outbox_table.c.id).where(
                    outbox_table.c.subject == PLACED, outbox_table.c.subject_id == order_id
                )
            )
            assert len(rows.all()) == 1

    async def test_different_content_at_once_is_one_order_and_one_conflict(self, committed):
        client, order_id, customer_id = committed
        body = order_body(external_id=order_id, customer_external_id=customer_id)
        results = await asyncio.gather(
            client.post("/v1/orders", json=body),
            client.post("/v1/orders", json=dict(body, channel="app")),
        )
        assert sorted(r.status_code for r in results) == [201, 409]

    async def test_one_key_for_two_orders_at_once(self, committed, database):
        client, order_id, customer_id = committed
        other = order_id.replace("o-conc-", "o-conc-b-")
        headers = {"Idempotency-Key": f"key-{order_id}"}
        results = await asyncio.gather(
            client.post(
                "/v1/orders",
                json=order_body(external_id=order_id, customer_external_id=customer_id),
                headers=headers,
            ),
            client.post(
                "/v1/orders",
                json=order_body(external_id=other, customer_external_id=customer_id),
                headers=headers,
            ),
        )
        assert sorted(r.status_code for r in results) == [201, 409]
        found = [(await client.get(f"/v1/orders/{o}")).status_code for o in (order_id, other)]
        assert sorted(found) == [200, 404]

    async def test_the_same_key_and_body_at_once(self, committed):
        client, order_id, customer_id = committed
        body = order_body(external_id=order_id, customer_external_id=customer_id)
        headers = {"Idempotency-Key": f"key-{order_id}"}
        results = await asyncio.gather(
            client.post("/v1/orders", json=body, headers=headers),
            client.post("/v1/orders", json=body, headers=headers),
        )
        assert sorted(r.status_code for r in results) == [200, 201]
