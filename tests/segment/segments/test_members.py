"""``POST /v1/segments/preview``, ``GET /v1/segments/{id}/members`` and
``GET /v1/customers/{external_id}/segments``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.segment.rules.factories import NOW, customer, member, order, segment

DE = {"field": "country", "op": "eq", "value": "DE"}


class TestPreview:
    async def test_count_and_sample(self, client, session):
        for n in range(25):
            await customer(session, f"c-{n:02}", country="DE")
        await customer(session, "c-fr", country="FR")
        await customer(session, "c-dup", country="DE", status="merged", root_external_id="c-00")
        response = await client.post("/v1/segments/preview", json={"rule": DE})
        assert response.status_code == 200
        body = response.json()
        assert body["count"] == 25
        assert body["sample"] == [f"c-{n:02}" for n in range(20)]

    async def test_uses_the_current_time(self, client, session):
        await customer(session, "c-1")
        await customer(session, "c-2")
        await order(session, "o-1", "c-1", datetime.now(UTC) - timedelta(days=2))
        rule = {"orders": {"within_days": 7, "count": {"eq": 0}}}
        body = (await client.post("/v1/segments/preview", json={"rule": rule})).json()
        assert body == {"count": 1, "sample": ["c-2"]}

    async def test_saves_nothing(self, client):
        await client.post("/v1/segments/preview", json={"rule": DE})
        assert (await client.get("/v1/segments")).json()["items"] == []

    async def test_bad_rule_is_a_422(self, client):
        rule = {"any": [{"orders": {"within_days": 30, "count": {"gte": "1"}}}]}
        response = await client.post("/v1/segments/preview", json={"rule": rule})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["rule.any[0].orders.count.gte"]
        response = await client.post(
            "/v1/segments/preview", json={"rule": {"segment": str(uuid.uuid4())}}
        )
        assert [e["code"] for e in response.json()["errors"]] == ["unknown_segment"]
        response = await client.post("/v1/segments/preview", json={"rule": DE, "name": "x"})
        assert [e["field"] for e in response.json()["errors"]] == ["body.name"]

    async def test_needs_credentials(self, anonymous):
        assert (await anonymous.post("/v1/segments/preview", json={"rule": DE})).status_code == 401


class TestMembers:
    async def test_keyset_pages(self, client, session):
        seg = await segment(session, "vip")
        other = await segment(session, "other")
        for n in range(5):
            await member(session, seg.id, f"c-{n}", entered_at=NOW + timedelta(minutes=n))
        await member(session, other.id, "c-x")
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            response = await client.get(f"/v1/segments/{seg.id}/members", params=params)
            assert response.status_code == 200
            page = response.json()
            seen += page["items"]
            if not (cursor := page["next_cursor"]):
                break
        assert [m["customer_external_id"] for m in seen] == [f"c-{n}" for n in range(5)]
        assert datetime.fromisoformat(seen[1]["entered_at"]) == NOW + timedelta(minutes=1)

    async def test_unknown_segment_is_404(self, client):
        response = await client.get(f"/v1/segments/{uuid.uuid4()}/members")
        assert response.status_code == 404

    async def test_limit_and_cursor_validation(self, client, session):
        seg = await segment(session, "vip")
        assert (
            await client.get(f"/v1/segments/{seg.id}/members", params={"limit": 0})
        ).status_code == 422
        assert (
            await client.get(f"/v1/segments/{seg.id}/members", params={"limit": 201})
        ).status_code == 422
        response = await client.get(f"/v1/segments/{seg.id}/members", params={"cursor": "bm9wZQ"})
        assert response.status_code == 400


class TestCustomerSegments:
    async def test_segments_of_a_customer(self, client, session):
        await customer(session, "c-1")
        vip = await segment(session, "VIP")
        champions = await segment(session, "Champions", kind="rfm", key="champions")
        gone = await segment(session, "Gone", deleted_at=NOW)
        await segment(session, "Not a member")
        for s in (vip, champions, gone):
            await member(session, s.id, "c-1")
        response = await client.get("/v1/customers/c-1/segments")
        assert response.status_code == 200
        body = response.json()
        assert body["customer_external_id"] == "c-1"
        assert [(s["name"], s["kind"], s["key"]) for s in body["segments"]] == [
            ("Champions", "rfm", "champions"),
            ("VIP", "rule", None),
        ]
        assert datetime.fromisoformat(body["segments"][0]["entered_at"]) == NOW

    async def test_merged_duplicate_shows_its_survivor(self, client, session):
        await customer(session, "c-1")
        await customer(session, "c-2", status="merged", root_external_id="c-1")
        vip = await segment(session, "VIP")
        await member(session, vip.id, "c-1")
        body = (await client.get("/v1/customers/c-2/segments")).json()
        assert body["customer_external_id"] == "c-1"
        assert [s["id"] for s in body["segments"]] == [str(vip.id)]

    async def test_customer_in_no_segment(self, client, session):
        await customer(session, "c-1")
        body = (await client.get("/v1/customers/c-1/segments")).json()
        assert body == {"customer_external_id": "c-1", "segments": []}

    async def test_unknown_customer_is_404(self, client):
        response = await client.get("/v1/customers/c-nobody/segments")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"

    async def test_malformed_id_is_422(self, client):
        response = await client.get("/v1/customers/bad id/segments")
        assert response.status_code == 422

    async def test_needs_credentials(self, anonymous):
        assert (await anonymous.get("/v1/customers/c-1/segments")).status_code == 401
