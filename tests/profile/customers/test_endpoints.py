"""``/v1/customers``: create, replace, patch, read, list; validation and events."""

from __future__ import annotations

import pytest

from tests.profile.conftest import published, put_customer

CREATED = "crm.profile.customer.created"
UPDATED = "crm.profile.customer.updated"


class TestPutCustomer:
    async def test_creates_with_normalised_contact_details(self, client, session):
        response = await client.put(
            "/v1/customers/c-100",
            json={
                "email": "  Ana.Silva@Example.COM ",
                "phone": "+44 20 7946 0958",
                "first_name": "Ana",
                "birthday": "1990-04-02",
                "timezone": "Europe/Lisbon",
                "locale": "pt-PT",
                "country": "pt",
                "source_channel": "app",
                "attributes": {"vip": True},
            },
        )
        assert response.status_code == 201
        body = response.json()
        assert body["external_id"] == "c-100"
        assert body["email"] == "ana.silva@example.com"
        assert body["phone"] == "+442079460958"
        assert body["country"] == "PT"
        assert body["status"] == "active"
        events = await published(session, CREATED)
        assert len(events) == 1
        assert events[0]["customer_external_id"] == "c-100"
        assert events[0]["email"] == "ana.silva@example.com"
        assert events[0]["customer_id"] == body["id"]

    async def test_replaces_every_field_and_publishes_what_changed(self, client, session):
        await put_customer(client, "c-101", email="a@example.com", city="Porto", first_name="A")
        response = await client.put(
            "/v1/customers/c-101", json={"email": "a@example.com", "city": "Lisbon"}
        )
        assert response.status_code == 200
        assert response.json()["city"] == "Lisbon"
        assert response.json()["first_name"] is None
        events = await published(session, UPDATED)
        assert len(events) == 1
        assert sorted(events[0]["changed_fields"]) == ["city", "first_name"]

    async def test_same_representation_twice_changes_nothing(self, client, session):
        await put_customer(client, "c-102", email="same@example.com")
        await put_customer(client, "c-102", email="same@example.com")
        assert await published(session, UPDATED) == []

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("email", "not-an-email"),
            ("phone", "12"),
            ("phone", "+1 555"),
            ("timezone", "Mars/Olympus"),
            ("locale", "english"),
            ("country", "XX"),
            ("birthday", "2999-01-01"),
            ("gender", "robot"),
            ("source_channel", "fax"),
            ("registered_at", "2020-01-01T00:00:00"),
            ("first_name", ""),
            ("attributes", ["not", "an", "object"]),
        ],
    )
    async def test_invalid_field_is_a_422_naming_it(self, client, session, field, value):
        response = await client.put("/v1/customers/c-bad", json={field: value})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [f"body.{field}"]
        assert await published(session, CREATED) == []

    async def test_unknown_field_is_refused(self, client):
        response = await client.put("/v1/customers/c-x", json={"emial": "a@example.com"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.emial"

    async def test_oversized_attributes_are_refused(self, client):
        response = await client.put(
            "/v1/customers/c-x", json={"attributes": {"blob": "x" * 20_000}}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.attributes"

    @pytest.mark.parametrize("method", ["put", "patch"])
    @pytest.mark.parametrize(
        ("number", "reason"),
        [
            # PostgreSQL gives 1e20 back as the integer 100000000000000000000, which the
            # customer event could not encode (orjson: "Integer exceeds 64-bit range").
            ("1e20", "attributes.a.b[1] is 1e+20; numbers must lie between"),
            ("-1.5e300", "attributes.a.b[1] is -1.5e+300; numbers must lie between"),
            ("18446744073709551616", "Integer exceeds 64-bit range"),
            ("NaN", "attributes.a.b[1] is nan; numbers must be finite"),
            ("-Infinity", "attributes.a.b[1] is -inf; numbers must be finite"),
            ("1e400", "attributes.a.b[1] is inf; numbers must be finite"),
        ],
    )
    async def test_number_out_of_range_in_attributes_is_a_422(
        self, client, session, method, number, reason
    ):
        await put_customer(client, "c-num")
        body = f'{{"attributes": {{"a": {{"b": [1, {number}]}}}}}}'.encode()
        response = await client.request(
            method.upper(),
            "/v1/customers/c-num",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["field"] == "body.attributes"
        assert reason in error["reason"]
        assert await published(session, UPDATED) == []

    async def test_numbers_up_to_64_bits_round_trip_into_the_event(self, client, session):
        attributes = {"small": 1e19, "low": -(2**63), "high": 2**64 - 1, "ratio": 0.25}
        created = await put_customer(client, "c-big", attributes=attributes)
        # The database keeps numbers exactly and prints 1e19 as an integer.
        expected = {**attributes, "small": 10**19}
        assert created["attributes"] == expected
        [event] = await published(session, CREATED)
        assert event["attributes"] == expected

    async def test_external_id_with_unsafe_characters_is_refused(self, client):
        response = await client.put("/v1/customers/a%20b", json={})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "path.external_id"

    async def test_needs_write_scope(self, anonymous):
        response = await anonymous.put("/v1/customers/c-1", json={})
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


class TestPatchCustomer:
    async def test_changes_only_the_fields_sent(self, client, session):
        await put_customer(client, "c-200", email="p@example.com", city="Porto")
        response = await client.patch("/v1/customers/c-200", json={"city": None, "locale": "en-GB"})
        assert response.status_code == 200
        body = response.json()
        assert body["email"] == "p@example.com"
        assert body["city"] is None
        assert body["locale"] == "en-GB"
        assert sorted((await published(session, UPDATED))[0]["changed_fields"]) == [
            "city",
            "locale",
        ]

    async def test_unknown_customer_is_404(self, client):
        response = await client.patch("/v1/customers/nobody", json={"city": "X"})
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"


class TestGetAndList:
    async def test_get_returns_the_customer(self, client):
        created = await put_customer(client, "c-300", email="g@example.com")
        response = await client.get("/v1/customers/c-300")
        assert response.status_code == 200
        assert response.json()["id"] == created["id"]

    async def test_get_unknown_is_404_problem(self, client):
        response = await client.get("/v1/customers/nobody")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"

    async def test_list_filters_by_normalised_email_and_phone(self, client):
        await put_customer(client, "c-400", email="find.me@example.com", phone="+33 1 42 68 53 00")
        await put_customer(client, "c-401", email="other@example.com")
        by_email = await client.get("/v1/customers", params={"email": " FIND.ME@example.com"})
        assert [c["external_id"] for c in by_email.json()["items"]] == ["c-400"]
        by_phone = await client.get("/v1/customers", params={"phone": "+33142685300"})
        assert [c["external_id"] for c in by_phone.json()["items"]] == ["c-400"]

    async def test_list_paginates_with_a_cursor(self, client):
        for i in range(5):
            await put_customer(client, f"page-{i}", city="Pagetown")
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            body = (await client.get("/v1/customers", params=params)).json()
            seen += [
                c["external_id"] for c in body["items"] if c["external_id"].startswith("page-")
            ]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == [f"page-{i}" for i in range(5)]  # each exactly once

    async def test_list_with_invalid_filter_names_the_parameter(self, client):
        response = await client.get("/v1/customers", params={"phone": "abc"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "query.phone"

    async def test_list_with_a_forged_cursor_is_400(self, client):
        response = await client.get("/v1/customers", params={"cursor": "bm9wZQ"})
        assert response.status_code == 400
