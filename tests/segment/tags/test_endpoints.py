"""``/v1/tag-rules``: create, replace, list, delete; validation; the tag follows the rule."""

from __future__ import annotations

from datetime import UTC, datetime

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_segment.evaluation.service import evaluate_customers, evaluate_segment_full
from crm_segment.models import Segment
from tests.segment.evaluation.factories import (
    changes,
    customer,
    derived_tags,
    tag_changes,
    token,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GERMANS = {"field": "country", "op": "eq", "value": "DE"}


async def _segment(session: AsyncSession, segment_id: str) -> Segment:
    stmt = select(Segment).where(Segment.id == segment_id).execution_options(populate_existing=True)
    return (await session.execute(stmt)).scalar_one()


class TestPutTagRule:
    async def test_anonymous(self, anonymous: AsyncClient):
        response = await anonymous.put("/v1/tag-rules/vip", json={"rule": GERMANS})
        assert response.status_code == 401

    async def test_create_then_replace(self, client: AsyncClient):
        tag = f"vip_{token()}"
        created = await client.put(
            f"/v1/tag-rules/{tag}", json={"rule": GERMANS, "description": "Germans"}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["tag"] == tag and body["rule"] == GERMANS
        assert (body["version"], body["evaluated_version"], body["enabled"]) == (1, 0, True)

        same = await client.put(
            f"/v1/tag-rules/{tag}", json={"rule": GERMANS, "description": "Deutsche"}
        )
        assert same.status_code == 200
        assert same.json()["version"] == 1  # only the description changed
        assert same.json()["segment_id"] == body["segment_id"]

        other = {"field": "country", "op": "eq", "value": "AT"}
        changed = await client.put(f"/v1/tag-rules/{tag}", json={"rule": other})
        assert (changed.json()["version"], changed.json()["rule"]) == (2, other)
        disabled = await client.put(f"/v1/tag-rules/{tag}", json={"rule": other, "enabled": False})
        assert (disabled.json()["version"], disabled.json()["enabled"]) == (3, False)

        listed = await client.get("/v1/tag-rules")
        assert tag in [r["tag"] for r in listed.json()["items"]]
        one = await client.get(f"/v1/tag-rules/{tag}")
        assert one.json()["version"] == 3

    async def test_invalid_rule_names_the_json_path(self, client: AsyncClient):
        rule = {"all": [GERMANS, {"field": "country", "op": "matches", "value": "x"}]}
        response = await client.put("/v1/tag-rules/vip", json={"rule": rule})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["rule.all[1].op"]

    async def test_invalid_tag(self, client: AsyncClient):
        for bad in ("VIP", "with space", "x" * 65, "é"):
            response = await client.put(f"/v1/tag-rules/{bad}", json={"rule": GERMANS})
            assert response.status_code == 422, bad

    async def test_unknown_body_field(self, client: AsyncClient):
        response = await client.put("/v1/tag-rules/vip", json={"rule": GERMANS, "colour": 1})
        assert response.status_code == 422

    async def test_unknown_tag_is_not_found(self, client: AsyncClient):
        response = await client.get("/v1/tag-rules/nope-never-created")
        assert response.status_code == 404


class TestTagFollowsRule:
    async def test_materialised_rule_tags_members_and_delete_removes_the_tag(
        self, client: AsyncClient, session: AsyncSession
    ):
        de, fr = f"de-{token()}", f"fr-{token()}"
        await customer(session, de)
        await customer(session, fr, country="FR")
        tag = f"t_{token()}"
        created = (await client.put(f"/v1/tag-rules/{tag}", json={"rule": GERMANS})).json()
        segment = await _segment(session, created["segment_id"])
        await evaluate_segment_full(session, segment, NOW)  # what the worker does next
        assert await derived_tags(session, tag) == [de]
        assert await tag_changes(session, tag) == [(de, "added")]
        assert (await client.get(f"/v1/tag-rules/{tag}")).json()["members_count"] == 1

        response = await client.delete(f"/v1/tag-rules/{tag}")
        assert response.status_code == 204
        assert await derived_tags(session, tag) == []
        assert await tag_changes(session, tag) == [(de, "added"), (de, "removed")]
        assert await changes(session, segment.id) == [(de, "entered"), (de, "exited")]
        assert (await client.get(f"/v1/tag-rules/{tag}")).status_code == 404
        assert (await client.delete(f"/v1/tag-rules/{tag}")).status_code == 404
        # a deleted rule is no longer evaluated
        await evaluate_customers(session, [de], NOW)
        assert await derived_tags(session, tag) == []

        again = await client.put(f"/v1/tag-rules/{tag}", json={"rule": GERMANS})
        assert again.status_code == 201
        assert again.json()["segment_id"] != created["segment_id"]
