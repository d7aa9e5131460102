"""``POST /v1/orders/{external_id}/status``: the status machine, history and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.profile.orders.factories import STATUS_CHANGED, events, field_names, place, set_status


class TestChangeStatus:
    async def test_walks_placed_paid_shipped_delivered(self, client, session):
        await place(client, external_id="o-300")
        before = datetime.now(UTC)
        for status in ("paid", "shipped", "delivered"):
            order = await set_status(client, "o-300", status)
            assert order["status"] == status
        assert [h["status"] for h in order["status_history"]] == [
            "placed",
            "paid",
            "shipped",
            "delivered",
        ]
        payloads = await events(session, STATUS_CHANGED, "o-300")
        assert [(p["previous_status"], p["status"]) for p in payloads] == [
            ("placed", "paid"),
            ("paid", "shipped"),
            ("shipped", "delivered"),
        ]
        assert all(p["customer_external_id"] == "c-1" for p in payloads)
        assert datetime.fromisoformat(payloads[0]["changed_at"]) >= before - timedelta(seconds=1)
        assert (await client.get("/v1/orders/o-300")).json()["status"] == "delivered"

    async def test_changed_at_is_kept(self, client, session):
        await place(client, external_id="o-301")
        when = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
        response = await client.post(
            "/v1/orders/o-301/status", json={"status": "paid", "changed_at": when.isoformat()}
        )
        assert response.status_code == 200
        history = response.json()["status_history"]
        assert datetime.fromisoformat(history[-1]["changed_at"]) == when
        [event] = await events(session, STATUS_CHANGED, "o-301")
        assert event == {
            "order_external_id": "o-301",
            "customer_external_id": "c-1",
            "status": "paid",
            "previous_status": "placed",
            "changed_at": event["changed_at"],
        }
        assert datetime.fromisoformat(event["changed_at"]) == when

    async def test_updated_at_moves(self, client):
        placed = await place(client, external_id="o-302")
        paid = await set_status(client, "o-302", "paid")
        assert paid["updated_at"] >= placed["updated_at"]
        assert paid["created_at"] == placed["created_at"]

    @pytest.mark.parametrize("path", [["cancelled"], ["paid", "cancelled"]])
    async def test_cancel_before_shipping(self, client, session, path):
        await place(client, external_id="o-303")
        for status in path:
            order = await set_status(client, "o-303", status)
        assert order["status"] == "cancelled"
        payloads = await events(session, STATUS_CHANGED, "o-303")
        assert payloads[-1]["previous_status"] == (path[-2] if len(path) > 1 else "placed")


class TestRepeatedStatus:
    async def test_current_status_again_changes_nothing(self, client, session):
        await place(client, external_id="o-310")
        first = await set_status(client, "o-310", "paid")
        again = await client.post("/v1/orders/o-310/status", json={"status": "paid"})
        assert again.status_code == 200
        assert again.json() == first
        assert len(await events(session, STATUS_CHANGED, "o-310")) == 1

    async def test_cancelled_again(self, client, session):
        await place(client, external_id="o-311")
        await set_status(client, "o-311", "cancelled")
        await set_status(client, "o-311", "cancelled")
        assert len(await events(session, STATUS_CHANGED, "o-311")) == 1


class TestIllegalTransition:
    @pytest.mark.parametrize(
        ("path", "target"),
        [
            ([], "shipped"),
            ([], "delivered"),
            (["paid"], "delivered"),
            (["paid", "shipped"], "cancelled"),
            (["paid", "shipped"], "paid"),
            (["paid", "shipped", "delivered"], "cancelled"),
            (["paid", "shipped", "delivered"], "shipped"),
            (["cancelled"], "paid"),
            (["paid", "cancelled"], "shipped"),
        ],
    )
    async def test_is_a_409_naming_from_and_to(self, client, session, path, target):
        await place(client, external_id="o-320")
        for status in path:
            await set_status(client, "o-320", status)
        current = path[-1] if path else "placed"
        response = await client.post("/v1/orders/o-320/status", json={"status": target})
        assert response.status_code == 409
        problem = response.json()
        assert problem["type"] == "urn:crm:problem:illegal-status-transition"
        assert f"from '{current}' to '{target}'" in problem["detail"]
        assert len(await events(session, STATUS_CHANGED, "o-320")) == len(path)
        assert (await client.get("/v1/orders/o-320")).json()["status"] == current


class TestInvalidStatusChange:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"status": "placed"}, "body.status"),
            ({"status": "refunded"}, "body.status"),
            ({"status": 1}, "body.status"),
            ({}, "body.status"),
            ({"status": "paid", "changed_at": "2026-01-01T00:00:00"}, "body.changed_at"),
            ({"status": "paid", "changed_at": "2999-01-01T00:00:00Z"}, "body.changed_at"),
            ({"status": "paid", "by": "ops"}, "body.by"),
        ],
    )
    async def test_is_a_422_naming_the_field(self, client, body, field):
        await place(client, external_id="o-330")
        response = await client.post("/v1/orders/o-330/status", json=body)
        assert response.status_code == 422
        assert field_names(response) == [field]

    async def test_changed_at_before_the_order_was_placed(self, client, session):
        await place(client, external_id="o-331", placed_at="2026-01-10T10:00:00Z")
        response = await client.post(
            "/v1/orders/o-331/status",
            json={"status": "paid", "changed_at": "2026-01-09T10:00:00Z"},
        )
        assert response.status_code == 422
        assert field_names(response) == ["body.changed_at"]
        assert await events(session, STATUS_CHANGED, "o-331") == []

    async def test_unknown_order_is_a_404(self, client):
        response = await client.post("/v1/orders/o-missing/status", json={"status": "paid"})
        assert response.status_code == 404

    async def test_needs_credentials(self, anonymous):
        response = await anonymous.post("/v1/orders/o-330/status", json={"status": "paid"})
        assert response.status_code == 401
