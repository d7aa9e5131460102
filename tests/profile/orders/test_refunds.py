"""``POST /v1/orders/{external_id}/refunds``: amounts, lines, limits, idempotency, concurrency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from crm_profile.models import Refund, outbox_table
from tests.profile.orders.factories import (
    REFUNDED,
    events,
    field_names,
    order_body,
    place,
    set_status,
)


async def refund(client, order: str, body: dict, key: str | None = None):
    """POST a refund, with an ``Idempotency-Key`` when ``key`` is given."""
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(f"/v1/orders/{order}/refunds", json=body, headers=headers)


async def refund_ok(client, order: str, body: dict, key: str | None = None) -> dict:
    """A refund that must succeed."""
    response = await refund(client, order, body, key)
    assert response.status_code == 201, response.text
    return response.json()


class TestRefundAmount:
    async def test_partial_refund(self, client, session):
        await place(client, external_id="o-400")
        response = await refund(client, "o-400", {"amount_minor": 1000, "reason": "late delivery"})
        assert response.status_code == 201
        body = response.json()
        assert body["order_external_id"] == "o-400"
        assert body["amount_minor"] == 1000
        assert body["lines"] == []
        assert body["reason"] == "late delivery"
        assert body["refunded_total_minor"] == 1000
        assert body["id"] and body["created_at"]
        order = (await client.get("/v1/orders/o-400")).json()
        assert order["refunded_minor"] == 1000
        [event] = await events(session, REFUNDED, "o-400")
        assert event == {
            "refund_id": body["id"],
            "order_external_id": "o-400",
            "customer_external_id": "c-1",
            "currency": "EUR",
            "amount_minor": 1000,
            "refunded_total_minor": 1000,
            "total_minor": 6799,
            "fully_refunded": False,
            "lines": [],
            "refunded_at": event["refunded_at"],
        }

    async def test_refunding_everything_marks_it_fully_refunded(self, client, session):
        await place(client, external_id="o-401")
        await refund_ok(client, "o-401", {"amount_minor": 6000})
        last = await refund_ok(client, "o-401", {"amount_minor": 799})
        assert last["refunded_total_minor"] == 6799
        payloads = await events(session, REFUNDED, "o-401")
        assert [p["fully_refunded"] for p in payloads] == [False, True]
        assert [p["refunded_total_minor"] for p in payloads] == [6000, 6799]

    async def test_more_than_paid_is_a_409_with_what_is_left(self, client, session):
        await place(client, external_id="o-402")
        response = await refund(client, "o-402", {"amount_minor": 6800})
        assert response.status_code == 409
        problem = response.json()
        assert problem["type"] == "urn:crm:problem:refund-exceeds-paid"
        assert "6799" in problem["detail"]
        assert field_names(response) == ["body.amount_minor"]
        await refund_ok(client, "o-402", {"amount_minor": 6000})
        response = await refund(client, "o-402", {"amount_minor": 800})
        assert response.status_code == 409
        assert "799" in response.json()["detail"]
        assert len(await events(session, REFUNDED, "o-402")) == 1
        assert (await client.get("/v1/orders/o-402")).json()["refunded_minor"] == 6000

    async def test_fully_refunded_order_refuses_more(self, client):
        await place(client, external_id="o-403")
        await refund_ok(client, "o-403", {"amount_minor": 6799})
        for body in ({"amount_minor": 1}, {"lines": [{"sku": "JACKET-L", "quantity": 1}]}):
            response = await refund(client, "o-403", body)
            assert response.status_code == 409
            assert "fully refunded" in response.json()["detail"]


class TestRefundLines:
    async def test_lines_are_refunded_net_of_their_discount_share(self, client, session):
        # subtotal 7000, discount 700: each unit comes back at 90% of its price.
        await place(client, external_id="o-410")
        first = await refund_ok(client, "o-410", {"lines": [{"sku": "TSHIRT-M", "quantity": 1}]})
        assert first["amount_minor"] == 1350
        assert first["lines"] == [{"sku": "TSHIRT-M", "quantity": 1}]
        rest = await refund_ok(
            client,
            "o-410",
            {"lines": [{"sku": "TSHIRT-M", "quantity": 1}, {"sku": "JACKET-L", "quantity": 1}]},
        )
        assert rest["amount_minor"] == 4950
        assert rest["refunded_total_minor"] == 6300  # subtotal − discount; shipping is left
        order = (await client.get("/v1/orders/o-410")).json()
        assert [line["refunded_quantity"] for line in order["lines"]] == [2, 1]
        shipping = await refund_ok(client, "o-410", {"amount_minor": 499})
        assert shipping["refunded_total_minor"] == 6799
        payloads = await events(session, REFUNDED, "o-410")
        assert [p["amount_minor"] for p in payloads] == [1350, 4950, 499]
        assert payloads[1]["lines"] == [
            {"sku": "TSHIRT-M", "quantity": 1},
            {"sku": "JACKET-L", "quantity": 1},
        ]
        assert [p["fully_refunded"] for p in payloads] == [False, False, True]

    async def test_rounding_never_loses_or_adds_a_cent_overall(self, client):
        lines = [{"sku": s, "quantity": 1, "unit_price_minor": 1} for s in ("A", "B", "C")]
        await place(
            client,
            external_id="o-411",
            lines=lines,
            discount_minor=1,
            shipping_minor=0,
            total_minor=2,
        )
        amounts = [
            (await refund_ok(client, "o-411", {"lines": [{"sku": s, "quantity": 1}]}))[
                "amount_minor"
            ]
            for s in ("A", "B", "C")
        ]
        assert amounts == [0, 1, 1]
        assert (await client.get("/v1/orders/o-411")).json()["refunded_minor"] == 2

    async def test_units_of_a_sku_come_from_its_lines_in_order(self, client):
        lines = [
            {"sku": "A", "quantity": 1, "unit_price_minor": 1000},
            {"sku": "B", "quantity": 1, "unit_price_minor": 300},
            {"sku": "A", "quantity": 2, "unit_price_minor": 500},
        ]
        await place(
            client,
            external_id="o-412",
            lines=lines,
            discount_minor=0,
            shipping_minor=0,
            total_minor=2300,
        )
        done = await refund_ok(client, "o-412", {"lines": [{"sku": "A", "quantity": 2}]})
        assert done["amount_minor"] == 1500
        order = (await client.get("/v1/orders/o-412")).json()
        assert [line["refunded_quantity"] for line in order["lines"]] == [1, 0, 1]

    async def test_more_units_than_bought_is_a_409(self, client, session):
        await place(client, external_id="o-413")
        response = await refund(client, "o-413", {"lines": [{"sku": "TSHIRT-M", "quantity": 3}]})
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:refund-exceeds-units"
        assert field_names(response) == ["body.lines[0].quantity"]
        assert "at most 2" in response.json()["detail"]
        await refund_ok(client, "o-413", {"lines": [{"sku": "TSHIRT-M", "quantity": 2}]})
        response = await refund(
            client,
            "o-413",
            {"lines": [{"sku": "JACKET-L", "quantity": 1}, {"sku": "TSHIRT-M", "quantity": 1}]},
        )
        assert response.status_code == 409
        assert field_names(response) == ["body.lines[1].quantity"]
        assert "at most 0" in response.json()["detail"]
        order = (await client.get("/v1/orders/o-413")).json()
        assert [line["refunded_quantity"] for line in order["lines"]] == [2, 0]
        assert len(await events(session, REFUNDED, "o-413")) == 1

    async def test_unknown_sku_is_a_422(self, client, session):
        await place(client, external_id="o-414")
        response = await refund(
            client,
            "o-414",
            {"lines": [{"sku": "TSHIRT-M", "quantity": 1}, {"sku": "SOCKS", "quantity": 1}]},
        )
        assert response.status_code == 422
        assert field_names(response) == ["body.lines[1].sku"]
        assert await events(session, REFUNDED, "o-414") == []

    async def test_line_value_is_capped_at_what_is_left(self, client):
        await place(client, external_id="o-415")
        await refund_ok(client, "o-415", {"amount_minor": 6000})
        # The jacket is worth 3600 after its discount share; only 799 is left of the payment.
        done = await refund_ok(client, "o-415", {"lines": [{"sku": "JACKET-L", "quantity": 1}]})
        assert done["amount_minor"] == 799
        assert done["refunded_total_minor"] == 6799
        order = (await client.get("/v1/orders/o-415")).json()
        assert [line["refunded_quantity"] for line in order["lines"]] == [0, 1]

    async def test_free_items_come_back_for_nothing(self, client, session):
        lines = [
            {"sku": "A", "quantity": 1, "unit_price_minor": 1000},
            {"sku": "GIFT", "quantity": 1, "unit_price_minor": 0},
        ]
        await place(
            client,
            external_id="o-416",
            lines=lines,
            discount_minor=0,
            shipping_minor=0,
            total_minor=1000,
        )
        done = await refund_ok(client, "o-416", {"lines": [{"sku": "GIFT", "quantity": 1}]})
        assert done["amount_minor"] == 0
        [event] = await events(session, REFUNDED, "o-416")
        assert event["amount_minor"] == 0
        assert event["lines"] == [{"sku": "GIFT", "quantity": 1}]


class TestRefundAfterStatus:
    async def test_placed_orders_count_as_paid(self, client):
        await place(client, external_id="o-420")
        await refund_ok(client, "o-420", {"amount_minor": 100})

    async def test_cancelled_after_payment_can_be_refunded(self, client):
        await place(client, external_id="o-421")
        await set_status(client, "o-421", "paid")
        await set_status(client, "o-421", "cancelled")
        done = await refund_ok(client, "o-421", {"amount_minor": 6799})
        assert done["refunded_total_minor"] == 6799

    async def test_cancelled_before_payment_has_nothing_to_refund(self, client, session):
        await place(client, external_id="o-422")
        await set_status(client, "o-422", "cancelled")
        for body in ({"amount_minor": 1}, {"lines": [{"sku": "JACKET-L", "quantity": 1}]}):
            response = await refund(client, "o-422", body)
            assert response.status_code == 409
            assert "cancelled before payment" in response.json()["detail"]
        assert await events(session, REFUNDED, "o-422") == []

    async def test_delivered_orders_can_be_refunded(self, client):
        await place(client, external_id="o-423")
        for status in ("paid", "shipped", "delivered"):
            await set_status(client, "o-423", status)
        await refund_ok(client, "o-423", {"lines": [{"sku": "JACKET-L", "quantity": 1}]})


class TestInvalidRefund:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "body"),
            ({"amount_minor": 100, "lines": [{"sku": "JACKET-L", "quantity": 1}]}, "body"),
            ({"reason": "no money"}, "body"),
            ({"amount_minor": 0}, "body.amount_minor"),
            ({"amount_minor": -5}, "body.amount_minor"),
            ({"amount_minor": "100"}, "body.amount_minor"),
            ({"amount_minor": 10.5}, "body.amount_minor"),
            ({"lines": []}, "body.lines"),
            ({"lines": [{"sku": "JACKET-L", "quantity": 0}]}, "body.lines[0].quantity"),
            ({"lines": [{"sku": "JACKET-L", "quantity": -1}]}, "body.lines[0].quantity"),
            ({"lines": [{"sku": "JACKET-L", "quantity": "1"}]}, "body.lines[0].quantity"),
            ({"lines": [{"sku": "JACKET-L"}]}, "body.lines[0].quantity"),
            ({"lines": [{"sku": "JACKET-L", "quantity": 1, "price": 1}]}, "body.lines[0].price"),
            (
                {"lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}]},
                "body.lines",
            ),
            ({"amount_minor": 100, "reason": ""}, "body.reason"),
            ({"amount_minor": 100, "reason": "x" * 501}, "body.reason"),
            ({"amount_minor": 100, "currency": "EUR"}, "body.currency"),
        ],
    )
    async def test_is_a_422_naming_the_field(self, client, session, body, field):
        await place(client, external_id="o-430")
        response = await refund(client, "o-430", body)
        assert response.status_code == 422, response.text
        assert field_names(response) == [field]
        assert await events(session, REFUNDED, "o-430") == []

    async def test_unknown_order_is_a_404(self, client):
        response = await refund(client, "o-missing", {"amount_minor": 1})
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:order-not-found"

    async def test_needs_credentials(self, anonymous):
        response = await anonymous.post("/v1/orders/o-430/refunds", json={"amount_minor": 1})
        assert response.status_code == 401


class TestRefundIdempotency:
    async def test_same_key_returns_the_same_refund_once(self, client, session):
        await place(client, external_id="o-440")
        body = {"lines": [{"sku": "TSHIRT-M", "quantity": 1}], "reason": "too small"}
        first = await refund(client, "o-440", body, key="rf-440")
        again = await refund(client, "o-440", body, key="rf-440")
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert len(await events(session, REFUNDED, "o-440")) == 1
        order = (await client.get("/v1/orders/o-440")).json()
        assert order["refunded_minor"] == 1350
        assert order["lines"][0]["refunded_quantity"] == 1
        stored = await session.scalar(select(Refund).where(Refund.idempotency_key == "rf-440"))
        assert stored.amount_minor == 1350

    async def test_same_key_by_amount(self, client, session):
        await place(client, external_id="o-441")
        for expected in (201, 200):
            response = await refund(client, "o-441", {"amount_minor": 500}, key="rf-441")
            assert response.status_code == expected
        assert (await client.get("/v1/orders/o-441")).json()["refunded_minor"] == 500

    @pytest.mark.parametrize(
        "other",
        [
            {"amount_minor": 501},
            {"amount_minor": 500, "reason": "other"},
            {"lines": [{"sku": "JACKET-L", "quantity": 1}]},
        ],
    )
    async def test_same_key_with_another_body_is_a_409(self, client, session, other):
        await place(client, external_id="o-442")
        await refund_ok(client, "o-442", {"amount_minor": 500}, key="rf-442")
        response = await refund(client, "o-442", other, key="rf-442")
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:idempotency-key-reused"
        assert field_names(response) == ["header.Idempotency-Key"]
        assert len(await events(session, REFUNDED, "o-442")) == 1

    async def test_same_key_on_another_order_is_a_409(self, client):
        await place(client, external_id="o-443")
        await place(client, external_id="o-444")
        await refund_ok(client, "o-443", {"amount_minor": 500}, key="rf-443")
        response = await refund(client, "o-444", {"amount_minor": 500}, key="rf-443")
        assert response.status_code == 409
        assert (await client.get("/v1/orders/o-444")).json()["refunded_minor"] == 0

    async def test_without_a_key_each_request_refunds(self, client, session):
        await place(client, external_id="o-445")
        await refund_ok(client, "o-445", {"amount_minor": 500})
        await refund_ok(client, "o-445", {"amount_minor": 500})
        assert len(await events(session, REFUNDED, "o-445")) == 2

    async def test_malformed_key_is_a_422(self, client):
        await place(client, external_id="o-446")
        response = await refund(client, "o-446", {"amount_minor": 1}, key="x" * 256)
        assert response.status_code == 422
        assert field_names(response) == ["header.Idempotency-Key"]


class TestConcurrentRefunds:
    """Committed requests running at the same time: the order row lock serialises them."""

    async def test_two_refunds_that_together_exceed_the_payment(self, committed, database):
        client, order_id, customer_id = committed
        await place(client, **order_body(external_id=order_id, customer_external_id=customer_id))
        results = await asyncio.gather(
            refund(client, order_id, {"amount_minor": 4000}),
            refund(client, order_id, {"amount_minor": 4000}),
        )
        assert sorted(r.status_code for r in results) == [201, 409]
        loser = next(r for r in results if r.status_code == 409)
        assert "2799" in loser.json()["detail"]
        order = (await client.get(f"/v1/orders/{order_id}")).json()
        assert order["refunded_minor"] == 4000
        async with database.unit_of_work() as s:
            rows = await s.execute(
                select(outbox_table.c.id).where(
                    outbox_table.c.subject == REFUNDED, outbox_table.c.subject_id == order_id
                )
            )
            assert len(rows.all()) == 1

    async def test_two_line_refunds_of_the_last_unit(self, committed):
        client, order_id, customer_id = committed
        await place(client, **order_body(external_id=order_id, customer_external_id=customer_id))
        body = {"lines": [{"sku": "JACKET-L", "quantity": 1}]}
        results = await asyncio.gather(
            refund(client, order_id, body), refund(client, order_id, body)
        )
        assert sorted(r.status_code for r in results) == [201, 409]
        order = (await client.get(f"/v1/orders/{order_id}")).json()
        assert order["lines"][1]["refunded_quantity"] == 1
        assert order["refunded_minor"] == 3600

    async def test_the_same_key_twice_at_once_refunds_once(self, committed):
        client, order_id, customer_id = committed
        await place(client, **order_body(external_id=order_id, customer_external_id=customer_id))
        key = f"rf-{order_id}"
        results = await asyncio.gather(
            refund(client, order_id, {"amount_minor": 1000}, key=key),
            refund(client, order_id, {"amount_minor": 1000}, key=key),
        )
        assert sorted(r.status_code for r in results) == [200, 201]
        assert results[0].json()["id"] == results[1].json()["id"]
        order = (await client.get(f"/v1/orders/{order_id}")).json()
        assert order["refunded_minor"] == 1000

    async def test_one_key_on_two_orders_at_once(self, committed):
        client, order_id, customer_id = committed
        other = order_id.replace("o-conc-", "o-conc-b-")
        await place(client, **order_body(external_id=order_id, customer_external_id=customer_id))
        await place(client, **order_body(external_id=other, customer_external_id=customer_id))
        key = f"rf-{order_id}"
        results = await asyncio.gather(
            refund(client, order_id, {"amount_minor": 100}, key=key),
            refund(client, other, {"amount_minor": 100}, key=key),
        )
        assert sorted(r.status_code for r in results) == [201, 409]
        totals = [
            (await client.get(f"/v1/orders/{o}")).json()["refunded_minor"]
            for o in (order_id, other)
        ]
        assert sorted(totals) == [0, 100]


class TestRefundOfFreeOrder:
    async def test_lines_of_an_order_with_no_subtotal_refund_nothing(self, client):
        lines = [{"sku": "SAMPLE", "quantity": 1, "unit_price_minor": 0}]
        await place(
            client,
            external_id="o-450",
            lines=lines,
            discount_minor=0,
            shipping_minor=500,
            total_minor=500,
        )
        done = await refund_ok(client, "o-450", {"lines": [{"sku": "SAMPLE", "quantity": 1}]})
        assert (done["amount_minor"], done["refunded_total_minor"]) == (0, 0)
        shipping = await refund_ok(client, "o-450", {"amount_minor": 500})
        assert shipping["refunded_total_minor"] == 500
