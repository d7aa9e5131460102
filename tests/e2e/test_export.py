"""GDPR export across services: profile's part and segment's part in one document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import new_external_id, new_phone, row


class TestExport:
    async def test_the_document_holds_profile_and_segment_parts(
        self, profile_api, database, eventually, erase_afterwards
    ):
        external_id = new_external_id("e2e-export")
        erase_afterwards.append(external_id)
        email = f"{external_id}@example.com"
        created = await profile_api.put(
            f"/v1/customers/{external_id}",
            json={
                "email": email,
                "phone": new_phone(),
                "first_name": "Export",
                "birthday": "1988-07-14",
                "country": "DE",
                "city": "Berlin",
                "locale": "de-DE",
                "timezone": "Europe/Berlin",
                "source_channel": "web",
            },
        )
        assert created.status_code == 201, created.text
        customer_id = created.json()["id"]
        now = datetime.now(UTC)
        events = await profile_api.post(
            "/v1/events",
            json={
                "events": [
                    {
                        "event_id": f"{external_id}-view",
                        "type": "product_view",
                        "customer_external_id": external_id,
                        "occurred_at": (now - timedelta(minutes=5)).isoformat(),
                        "properties": {"sku": "SKU-E2E"},
                    }
                ]
            },
        )
        assert events.json()["accepted"] == 1, events.text
        order = await profile_api.post(
            "/v1/orders",
            json={
                "external_id": f"{external_id}-o1",
                "customer_external_id": external_id,
                "placed_at": (now - timedelta(minutes=1)).isoformat(),
                "currency": "EUR",
                "lines": [{"sku": "SKU-E2E", "quantity": 1, "unit_price_minor": 2500}],
                "discount_minor": 0,
                "shipping_minor": 0,
                "total_minor": 2500,
            },
        )
        assert order.status_code == 201, order.text

        sql = "SELECT * FROM segment.customer WHERE customer_external_id = :e"
        projection = await eventually(lambda: row(database, sql, e=external_id))
        assert (projection["city"], projection["birthday_month"]) == ("Berlin", 7)

        started = await profile_api.post(f"/v1/customers/{external_id}/export")
        assert started.status_code == 202
        url = f"/v1/exports/{started.json()['id']}"

        async def done():
            body = (await profile_api.get(url)).json()
            return body if body["status"] == "done" else None

        export = await eventually(done)
        assert export["received_parts"] == ["profile", "segment"]
        assert export["missing_parts"] == [] and export["overdue"] is False
        profile = export["document"]["profile"]["tables"]
        assert [c["email"] for c in profile["customer"]] == [email]
        assert [e["sku"] for e in profile["behaviour_event"]] == ["SKU-E2E"]
        assert [o["external_id"] for o in profile["order"]] == [f"{external_id}-o1"]
        assert [line["unit_price_minor"] for line in profile["order_line"]] == [2500]
        [segment] = export["document"]["segment"]["customers"]
        assert segment["customer_external_id"] == external_id
        assert segment["customer_id"] == customer_id
        assert (segment["country"], segment["city"], segment["locale"]) == ("DE", "Berlin", "de-DE")
        assert (segment["status"], segment["source_channel"]) == ("active", "web")
        assert "email" not in segment and email not in str(segment)
