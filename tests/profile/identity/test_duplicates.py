"""``GET /v1/duplicates``: pairs of active customers sharing a normalised email or phone.

The listing is global, so each test names its customers and addresses with a fresh token and
only looks at pairs of its own (other suites may have committed customers of their own).
"""

from __future__ import annotations

import random
import uuid

import pytest

from tests.profile.identity.conftest import age, put_customer


@pytest.fixture
def t() -> str:
    """A token unique to the test."""
    return uuid.uuid4().hex[:10]


def phone() -> str:
    """A valid, rarely repeated UK number (Ofcom's range for fiction: 020 7946 0000-0999)."""
    return f"+44 20 7946 {random.randrange(1000):04d}"


async def pairs(client, t, **params):
    """Every page's pairs of customers named ``t-...``, with the raw pages."""
    response = await client.get("/v1/duplicates", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    mine = [
        (p["customer_external_id"], p["duplicate_external_id"], p["reasons"])
        for p in body["items"]
        if p["customer_external_id"].startswith(t)
    ]
    return mine, body


async def all_pairs(client, t, limit=200):
    seen, cursor = [], None
    while True:
        mine, body = await pairs(client, t, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert len(body["items"]) <= limit
        seen += mine
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


class TestListDuplicates:
    async def test_pairs_by_normalised_email_and_phone_older_first(self, client, session, t):
        number = phone()
        await put_customer(client, f"{t}-new", email=f" {t.upper()}@Example.com")
        await put_customer(client, f"{t}-old", email=f"{t}@example.com", phone=number)
        await put_customer(client, f"{t}-mid", phone=number.replace(" ", ""))
        await put_customer(client, f"{t}-none", email=f"{t}-other@example.com")
        await age(session, f"{t}-old", 3000)
        await age(session, f"{t}-mid", 2000)
        await age(session, f"{t}-new", 1000)
        assert await all_pairs(client, t) == [
            (f"{t}-old", f"{t}-mid", ["phone"]),
            (f"{t}-old", f"{t}-new", ["email"]),
        ]

    async def test_items_carry_both_ids(self, client, session, t):
        old = await put_customer(client, f"{t}-1", email=f"{t}@example.com")
        new = await put_customer(client, f"{t}-2", email=f"{t}@example.com")
        await age(session, f"{t}-1", 2)
        _, body = await pairs(client, t, limit=200)
        item = next(p for p in body["items"] if p["customer_external_id"] == f"{t}-1")
        assert item == {
            "customer_id": old["id"],
            "customer_external_id": f"{t}-1",
            "duplicate_id": new["id"],
            "duplicate_external_id": f"{t}-2",
            "reasons": ["email"],
        }

    async def test_both_reasons_in_one_pair(self, client, session, t):
        number = phone()
        await put_customer(client, f"{t}-b1", email=f"{t}@example.com", phone=number)
        await put_customer(client, f"{t}-b2", email=f"{t}@example.com", phone=number)
        await age(session, f"{t}-b1", 2)
        assert await all_pairs(client, t) == [(f"{t}-b1", f"{t}-b2", ["email", "phone"])]

    async def test_merged_customers_are_not_candidates(self, client, session, t):
        for i in (1, 2, 3):
            await put_customer(client, f"{t}-m{i}", email=f"{t}@example.com")
            await age(session, f"{t}-m{i}", 10 - i)
        merged = await client.post(
            f"/v1/customers/{t}-m1/merge", json={"duplicate_external_id": f"{t}-m2"}
        )
        assert merged.status_code == 201
        assert await all_pairs(client, t) == [(f"{t}-m1", f"{t}-m3", ["email"])]

    async def test_customers_without_contact_details_are_not_pairs(self, client, t):
        await put_customer(client, f"{t}-e1")
        await put_customer(client, f"{t}-e2")
        await put_customer(client, f"{t}-e3", first_name="Same")
        await put_customer(client, f"{t}-e4", first_name="Same")
        assert await all_pairs(client, t) == []

    async def test_keyset_pages_see_each_pair_once(self, client, session, t):
        for i in range(5):
            await put_customer(client, f"{t}-p{i}", email=f"{t}@example.com")
            await age(session, f"{t}-p{i}", 10_000 - i)
        expected = [
            (f"{t}-p{i}", f"{t}-p{j}", ["email"]) for i in range(5) for j in range(i + 1, 5)
        ]
        assert await all_pairs(client, t, limit=3) == expected
        assert await all_pairs(client, t, limit=1) == expected

    async def test_forged_cursor_is_400(self, client):
        for cursor in ("bm9wZQ", "WzEsMiwzLDRd"):  # not JSON; [1,2,3,4]
            response = await client.get("/v1/duplicates", params={"cursor": cursor})
            assert response.status_code == 400
            assert response.json()["type"] == "urn:crm:problem:invalid-cursor"

    @pytest.mark.parametrize("limit", ["0", "201", "ten"])
    async def test_bad_limit_is_422_naming_it(self, client, limit):
        response = await client.get("/v1/duplicates", params={"limit": limit})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["query.limit"]

    async def test_needs_read_scope(self, anonymous, reader):
        assert (await anonymous.get("/v1/duplicates")).status_code == 401
        assert (await reader.get("/v1/duplicates")).status_code == 200
