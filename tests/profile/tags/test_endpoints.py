"""``/v1/customers/{external_id}/tags``: manual tags, idempotency, events, the merge group."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from crm_profile.models import CustomerTag, CustomerTagChange
from crm_profile.tags import service
from tests.profile.conftest import published, put_customer
from tests.profile.timeline.factories import customer_row, merge

CHANGED = "crm.profile.tag.changed"


async def tags_of(client, external_id: str) -> list[tuple[str, str]]:
    """``(tag, origin)`` pairs the API lists."""
    response = await client.get(f"/v1/customers/{external_id}/tags")
    assert response.status_code == 200, response.text
    return [(t["tag"], t["origin"]) for t in response.json()["items"]]


async def changes(session) -> list[tuple[str, str, str]]:
    """The tag change history: ``(tag, origin, change)`` in order."""
    rows = await session.execute(select(CustomerTagChange).order_by(CustomerTagChange.id))
    return [(c.tag, c.origin, c.change) for c in rows.scalars()]


class TestAddTag:
    async def test_first_add_is_201_and_published(self, client, session):
        await put_customer(client, "tg-1")
        response = await client.post("/v1/customers/tg-1/tags/vip")
        assert response.status_code == 201
        body = response.json()
        assert (body["tag"], body["origin"]) == ("vip", "manual")
        assert await published(session, CHANGED) == [
            {"customer_external_id": "tg-1", "tag": "vip", "change": "added", "origin": "manual"}
        ]
        assert await changes(session) == [("vip", "manual", "added")]

    async def test_repeat_is_200_and_changes_nothing(self, client, session):
        await put_customer(client, "tg-2")
        first = await client.post("/v1/customers/tg-2/tags/b2b:wholesale")
        again = await client.post("/v1/customers/tg-2/tags/b2b:wholesale")
        assert again.status_code == 200
        assert again.json() == first.json()
        assert len(await published(session, CHANGED)) == 1
        assert len(await changes(session)) == 1

    async def test_tag_of_the_group_counts_as_present(self, client, session):
        await put_customer(client, "tg-3")
        await put_customer(client, "tg-3-dup")
        await client.post("/v1/customers/tg-3-dup/tags/vip")
        await merge(session, "tg-3", "tg-3-dup")
        response = await client.post("/v1/customers/tg-3/tags/vip")
        assert response.status_code == 200
        assert len(await published(session, CHANGED)) == 1

    async def test_tag_sent_for_a_merged_duplicate_stays_with_it(self, client, session):
        await put_customer(client, "tg-4")
        await put_customer(client, "tg-4-dup")
        await merge(session, "tg-4", "tg-4-dup")
        assert (await client.post("/v1/customers/tg-4-dup/tags/vip")).status_code == 201
        dup = await customer_row(session, "tg-4-dup")
        row = (await session.execute(select(CustomerTag))).scalar_one()
        assert row.customer_id == dup.id
        assert await tags_of(client, "tg-4") == [("vip", "manual")]
        [event] = await published(session, CHANGED)
        assert event["customer_external_id"] == "tg-4"

    async def test_unknown_customer(self, client, session):
        response = await client.post("/v1/customers/tg-nobody/tags/vip")
        assert response.status_code == 404
        assert await published(session, CHANGED) == []

    @pytest.mark.parametrize("tag", ["VIP", "a b", "x" * 65, "vip!", "é"])
    async def test_invalid_tag_is_a_422_naming_the_path(self, client, tag):
        await put_customer(client, "tg-bad")
        response = await client.post(f"/v1/customers/tg-bad/tags/{tag}")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.tag"]

    async def test_longest_tag(self, client):
        await put_customer(client, "tg-5")
        tag = "a-b_c:" + "x" * 58
        assert (await client.post(f"/v1/customers/tg-5/tags/{tag}")).status_code == 201

    async def test_anonymous(self, anonymous):
        assert (await anonymous.post("/v1/customers/x/tags/vip")).status_code == 401


class TestRemoveTag:
    async def test_removes_and_publishes(self, client, session):
        await put_customer(client, "tr-1")
        await client.post("/v1/customers/tr-1/tags/vip")
        response = await client.delete("/v1/customers/tr-1/tags/vip")
        assert response.status_code == 204
        assert await tags_of(client, "tr-1") == []
        assert [e["change"] for e in await published(session, CHANGED)] == ["added", "removed"]
        assert await changes(session) == [("vip", "manual", "added"), ("vip", "manual", "removed")]

    async def test_absent_tag_is_404_and_publishes_nothing(self, client, session):
        await put_customer(client, "tr-2")
        await client.post("/v1/customers/tr-2/tags/vip")
        await client.delete("/v1/customers/tr-2/tags/vip")
        response = await client.delete("/v1/customers/tr-2/tags/vip")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:tag-not-found"
        assert len(await published(session, CHANGED)) == 2

    async def test_removes_it_from_the_whole_group(self, client, session):
        await put_customer(client, "tr-3")
        await put_customer(client, "tr-3-dup")
        await client.post("/v1/customers/tr-3-dup/tags/vip")
        await merge(session, "tr-3", "tr-3-dup")
        assert (await client.delete("/v1/customers/tr-3/tags/vip")).status_code == 204
        assert (await session.execute(select(CustomerTag))).first() is None

    async def test_segment_tag_of_the_same_name_stays(self, client, session):
        await put_customer(client, "tr-4")
        await client.post("/v1/customers/tr-4/tags/churn_risk")
        await service.apply_segment_change(
            session, "tr-4", "churn_risk", "added", datetime.now(UTC)
        )
        await client.delete("/v1/customers/tr-4/tags/churn_risk")
        assert await tags_of(client, "tr-4") == [("churn_risk", "segment")]
        assert (await client.delete("/v1/customers/tr-4/tags/churn_risk")).status_code == 404

    async def test_unknown_customer(self, client):
        assert (await client.delete("/v1/customers/tr-nobody/tags/vip")).status_code == 404

    async def test_invalid_tag(self, client):
        response = await client.delete("/v1/customers/tr-1/tags/NOPE")
        assert [e["field"] for e in response.json()["errors"]] == ["path.tag"]

    async def test_anonymous(self, anonymous):
        assert (await anonymous.delete("/v1/customers/x/tags/vip")).status_code == 401


class TestListTags:
    async def test_manual_and_segment_tags_of_the_group_with_their_origin(self, client, session):
        await put_customer(client, "tl-1")
        await put_customer(client, "tl-1-dup")
        await client.post("/v1/customers/tl-1/tags/vip")
        await client.post("/v1/customers/tl-1-dup/tags/vip")
        await client.post("/v1/customers/tl-1-dup/tags/b2b")
        await service.apply_segment_change(session, "tl-1", "vip", "added", datetime.now(UTC))
        await merge(session, "tl-1", "tl-1-dup")
        response = await client.get("/v1/customers/tl-1/tags")
        assert response.json()["next_cursor"] is None
        assert await tags_of(client, "tl-1") == [
            ("b2b", "manual"),
            ("vip", "manual"),
            ("vip", "segment"),
        ]
        assert set(response.json()["items"][0]) == {"tag", "origin", "created_at"}
        # The customer record shows the same tags.
        customer = (await client.get("/v1/customers/tl-1")).json()
        assert len(customer["tags"]) == 3

    async def test_no_tags(self, client):
        await put_customer(client, "tl-2")
        assert await tags_of(client, "tl-2") == []

    async def test_unknown_customer(self, client):
        assert (await client.get("/v1/customers/tl-nobody/tags")).status_code == 404

    async def test_anonymous(self, anonymous):
        assert (await anonymous.get("/v1/customers/x/tags")).status_code == 401
