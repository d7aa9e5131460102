"""Erasure across services: afterwards no schema holds anything that identifies the customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import find_everywhere, new_external_id, new_phone, row

PROJECTION = "SELECT * FROM segment.customer WHERE customer_external_id = :e"


async def customer_with_data_everywhere(api, external_id: str) -> dict[str, str]:
    """A customer with consent, tag, linked device, behaviour and an order; what identifies it."""
    person = {
        "external_id": external_id,
        "email": f"{external_id}@example.com",
        "phone": new_phone(),
        "anonymous_id": f"{external_id}-device",
    }
    response = await api.put(
        f"/v1/customers/{external_id}",
        json={
            "email": person["email"],
            "phone": person["phone"],
            "first_name": "Erase",
            "last_name": "Me",
            "birthday": "1979-03-09",
            "country": "FR",
            "city": "Lille",
        },
    )
    assert response.status_code == 201, response.text
    now = datetime.now(UTC)
    calls = [
        await api.put(
            f"/v1/customers/{external_id}/consents/email",
            json={"status": "granted", "source": "checkout"},
        ),
        await api.post(f"/v1/customers/{external_id}/tags/vip"),
        await api.post(
            "/v1/identify",
            json={"customer_external_id": external_id, "anonymous_id": person["anonymous_id"]},
        ),
        await api.post(
            "/v1/events",
            json={
                "events": [
                    {
                        "event_id": f"{external_id}-e1",
                        "type": "add_to_cart",
                        "customer_external_id": external_id,
                        "occurred_at": (now - timedelta(minutes=3)).isoformat(),
                        "properties": {"sku": "SKU-X", "quantity": 1},
                    },
                    {
                        "event_id": f"{external_id}-e2",
                        "type": "page_view",
                        "anonymous_id": person["anonymous_id"],
                        "occurred_at": (now - timedelta(minutes=9)).isoformat(),
                    },
                ]
            },
        ),
        await api.post(
            "/v1/orders",
            json={
                "external_id": f"{external_id}-o1",
                "customer_external_id": external_id,
                "placed_at": (now - timedelta(minutes=1)).isoformat(),
                "currency": "EUR",
                "lines": [{"sku": "SKU-X", "quantity": 2, "unit_price_minor": 1000}],
                "discount_minor": 0,
                "shipping_minor": 0,
                "total_minor": 2000,
            },
        ),
        await api.post(f"/v1/orders/{external_id}-o1/status", json={"status": "paid"}),
        await api.post(f"/v1/orders/{external_id}-o1/refunds", json={"amount_minor": 500}),
    ]
    for call in calls:
        assert call.status_code < 300, f"{call.request.method} {call.request.url}: {call.text}"
    return person


class TestErasure:
    async def test_no_schema_holds_anything_about_the_customer_afterwards(
        self, profile_api, database, eventually, erase_afterwards
    ):
        survivor = await customer_with_data_everywhere(profile_api, new_external_id("e2e-erase"))
        duplicate = await customer_with_data_everywhere(profile_api, new_external_id("e2e-dupe"))
        bystander = await customer_with_data_everywhere(profile_api, new_external_id("e2e-keep"))
        erase_afterwards.append(bystander["external_id"])
        merged = await profile_api.post(
            f"/v1/customers/{survivor['external_id']}/merge",
            json={"duplicate_external_id": duplicate["external_id"]},
        )
        assert merged.status_code == 201, merged.text
        for person in (survivor, duplicate, bystander):
            await eventually(lambda e=person["external_id"]: row(database, PROJECTION, e=e))
        export = await profile_api.post(f"/v1/customers/{survivor['external_id']}/export")
        export_url = f"/v1/exports/{export.json()['id']}"

        async def export_done():
            return (await profile_api.get(export_url)).json()["status"] == "done"

        await eventually(export_done)
        needles = [v for p in (survivor, duplicate) for v in p.values()]
        before = await find_everywhere(database, needles)
        assert {"profile.customer.external_id", "segment.customer.customer_external_id"} <= set(
            before
        )
        assert "profile.export_job.parts" in before

        response = await profile_api.delete(f"/v1/customers/{survivor['external_id']}")
        assert response.status_code == 204

        # Profile's rows went within the request; segment's follow from the event. Relays empty
        # both outboxes (which held the personal data of events not yet published) meanwhile.
        async def nothing_left():
            return await find_everywhere(database, needles) == []

        await eventually(nothing_left)
        for person in (survivor, duplicate):
            assert await row(database, PROJECTION, e=person["external_id"]) is None
        assert await row(database, PROJECTION, e=bystander["external_id"]) is not None
        assert await find_everywhere(database, [bystander["email"]]) != []

        async def outboxes_relayed():
            counts = [
                await row(database, f"SELECT count(*) AS n FROM {schema}.outbox")
                for schema in ("profile", "segment")
            ]
            return counts == [{"n": 0}, {"n": 0}]

        await eventually(outboxes_relayed)

        for person in (survivor, duplicate):
            external_id = person["external_id"]
            assert (await profile_api.get(f"/v1/customers/{external_id}")).status_code == 404
            assert (
                await profile_api.post(f"/v1/customers/{external_id}/export")
            ).status_code == 404
            listed = await profile_api.get("/v1/customers", params={"email": person["email"]})
            assert listed.json()["items"] == []
        assert (await profile_api.get(export_url)).status_code == 404
        audit = await row(
            database,
            "SELECT customer_id::text AS customer_id, requested_by FROM profile.erasure_audit"
            " WHERE customer_id = (SELECT customer_id FROM profile.erasure_audit"
            " ORDER BY erased_at DESC LIMIT 1)",
        )
        assert audit is not None and audit["requested_by"] == "key:local-admin"
        tombstone = await row(
            database,
            "SELECT 1 AS found FROM segment.erased_customer WHERE customer_id = CAST(:c AS uuid)",
            c=audit["customer_id"],
        )
        assert tombstone == {"found": 1}

    async def test_the_same_external_id_starts_over_everywhere(
        self, profile_api, database, eventually, erase_afterwards
    ):
        external_id = new_external_id("e2e-again")
        erase_afterwards.append(external_id)
        first = await profile_api.put(f"/v1/customers/{external_id}", json={"city": "Old"})
        await eventually(lambda: row(database, PROJECTION, e=external_id))
        assert (await profile_api.delete(f"/v1/customers/{external_id}")).status_code == 204

        async def gone():
            return await row(database, PROJECTION, e=external_id) is None

        await eventually(gone)
        again = await profile_api.put(f"/v1/customers/{external_id}", json={"city": "New"})
        assert again.status_code == 201
        assert again.json()["id"] != first.json()["id"]

        async def projected_again():
            found = await row(database, PROJECTION, e=external_id)
            return found if found and found["city"] == "New" else None

        fresh = await eventually(projected_again)
        assert str(fresh["customer_id"]) == again.json()["id"]
