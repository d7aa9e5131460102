"""``/v1/segments``: create, read, list, change and delete rule segments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from crm_segment.evaluation.service import evaluate_segment_full
from crm_segment.models import Segment
from tests.segment.evaluation.factories import changes, customer, members
from tests.segment.rules.factories import segment

DE = {"field": "country", "op": "eq", "value": "DE"}


async def create(
    client: AsyncClient, name: str = "Germans", rule: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    response = await client.post("/v1/segments", json={"name": name, "rule": rule or DE, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def errors(response) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


class TestCreate:
    async def test_created_unevaluated(self, client, session):
        body = await create(client, description="customers in Germany")
        assert body["name"] == "Germans"
        assert body["description"] == "customers in Germany"
        assert body["kind"] == "rule"
        assert body["rule"] == DE
        assert (body["version"], body["evaluated_version"], body["members_count"]) == (1, 0, 0)
        assert body["enabled"] is True
        assert body["key"] is None and body["tag"] is None and body["evaluated_at"] is None
        stored = await session.get(Segment, uuid.UUID(body["id"]))
        assert stored is not None and stored.rule == DE

    async def test_duplicate_name_is_a_409(self, client):
        await create(client)
        response = await client.post("/v1/segments", json={"name": " Germans ", "rule": DE})
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:segment-name-taken"

    async def test_name_of_a_deleted_segment_is_free(self, client):
        first = await create(client)
        assert (await client.delete(f"/v1/segments/{first['id']}")).status_code == 204
        assert (await create(client))["id"] != first["id"]

    async def test_bad_rule_is_a_422_with_the_path(self, client):
        rule = {"all": [DE, DE, {"field": "country", "op": "like", "value": "D"}]}
        response = await client.post("/v1/segments", json={"name": "x", "rule": rule})
        assert response.status_code == 422
        assert response.json()["type"] == "urn:crm:problem:invalid-rule"
        assert errors(response) == [("rule.all[2].op", "unknown_operator")]

    async def test_unknown_referenced_segment_is_a_422(self, client):
        missing = uuid.uuid4()
        rule = {"all": [DE, {"not": {"segment": str(missing)}}]}
        response = await client.post("/v1/segments", json={"name": "x", "rule": rule})
        assert response.status_code == 422
        assert errors(response) == [("rule.all[1].not.segment", "unknown_segment")]

    async def test_deleted_referenced_segment_is_unknown(self, client):
        gone = await create(client, name="gone")
        await client.delete(f"/v1/segments/{gone['id']}")
        response = await client.post(
            "/v1/segments", json={"name": "x", "rule": {"segment": gone["id"]}}
        )
        assert errors(response) == [("rule.segment", "unknown_segment")]

    async def test_reference_to_a_live_segment(self, client):
        base = await create(client, name="base")
        body = await create(client, name="derived", rule={"segment": base["id"]})
        assert body["rule"] == {"segment": base["id"]}

    async def test_payload_validation(self, client):
        cases = [
            ({"name": "", "rule": DE}, "body.name"),
            ({"name": "x" * 201, "rule": DE}, "body.name"),
            ({"name": "x"}, "body.rule"),
            ({"name": "x", "rule": [DE]}, "body.rule"),
            ({"name": "x", "rule": DE, "kind": "rfm"}, "body.kind"),
        ]
        for body, field in cases:
            response = await client.post("/v1/segments", json=body)
            assert response.status_code == 422, body
            assert [e["field"] for e in response.json()["errors"]] == [field]

    async def test_needs_write_scope(self, anonymous):
        response = await anonymous.post("/v1/segments", json={"name": "x", "rule": DE})
        assert response.status_code == 401


class TestRead:
    async def test_get(self, client):
        created = await create(client)
        response = await client.get(f"/v1/segments/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created

    async def test_unknown_and_deleted_are_404(self, client):
        assert (await client.get(f"/v1/segments/{uuid.uuid4()}")).status_code == 404
        created = await create(client)
        await client.delete(f"/v1/segments/{created['id']}")
        response = await client.get(f"/v1/segments/{created['id']}")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:segment-not-found"

    async def test_an_id_that_is_not_a_uuid_names_no_segment(self, client):
        # segment ids are UUIDs in the route itself, so /v1/segments/preview never collides
        response = await client.get("/v1/segments/not-a-uuid")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert (await client.patch("/v1/segments/preview", json={})).status_code == 405


class TestList:
    async def test_pages_and_kind_filter(self, client, session):
        ids = [(await create(client, name=f"s{n}"))["id"] for n in range(5)]
        await segment(session, "Champions", kind="rfm", key="champions")
        seen, cursor = [], None
        while True:
            params = {"limit": 2, "kind": "rule"} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/segments", params=params)).json()
            assert len(page["items"]) <= 2
            seen += [s["id"] for s in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert seen == ids
        rfm = (await client.get("/v1/segments", params={"kind": "rfm"})).json()
        assert [s["key"] for s in rfm["items"]] == ["champions"]
        everything = (await client.get("/v1/segments", params={"limit": 200})).json()
        assert len(everything["items"]) == 6

    async def test_deleted_are_not_listed(self, client):
        created = await create(client)
        await client.delete(f"/v1/segments/{created['id']}")
        assert (await client.get("/v1/segments")).json()["items"] == []

    async def test_bad_cursor_and_kind(self, client):
        assert (await client.get("/v1/segments", params={"cursor": "!!"})).status_code == 400
        response = await client.get("/v1/segments", params={"kind": "vip"})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["query.kind"]


class TestUpdate:
    async def test_rule_change_bumps_version(self, client):
        created = await create(client)
        rule = {"field": "country", "op": "in", "value": ["DE", "AT"]}
        response = await client.patch(f"/v1/segments/{created['id']}", json={"rule": rule})
        assert response.status_code == 200
        body = response.json()
        assert (body["version"], body["rule"]) == (2, rule)
        # the same rule again changes nothing
        again = await client.patch(f"/v1/segments/{created['id']}", json={"rule": rule})
        assert again.json()["version"] == 2

    async def test_name_description_enabled_keep_version(self, client):
        created = await create(client)
        response = await client.patch(
            f"/v1/segments/{created['id']}",
            json={"name": "DACH", "description": "d", "enabled": False},
        )
        body = response.json()
        assert (body["name"], body["description"], body["enabled"], body["version"]) == (
            "DACH",
            "d",
            False,
            1,
        )

    async def test_rename_to_a_taken_name_is_a_409(self, client):
        await create(client, name="a")
        b = await create(client, name="b")
        response = await client.patch(f"/v1/segments/{b['id']}", json={"name": "a"})
        assert response.status_code == 409
        # keeping its own name is fine
        assert (
            await client.patch(f"/v1/segments/{b['id']}", json={"name": "b"})
        ).status_code == 200

    async def test_bad_rule_and_nulls_are_422(self, client):
        created = await create(client)
        response = await client.patch(
            f"/v1/segments/{created['id']}",
            json={"rule": {"field": "colour", "op": "eq", "value": 1}},
        )
        assert errors(response) == [("rule.field", "unknown_field")]
        response = await client.patch(f"/v1/segments/{created['id']}", json={"name": None})
        assert response.status_code == 422
        response = await client.patch(f"/v1/segments/{created['id']}", json={"enabled": "no"})
        assert [e["field"] for e in response.json()["errors"]] == ["body.enabled"]

    async def test_cycle_is_a_422(self, client):
        a = await create(client, name="a")
        b = await create(client, name="b", rule={"segment": a["id"]})
        c = await create(client, name="c", rule={"all": [DE, {"segment": b["id"]}]})
        # a -> c -> b -> a
        response = await client.patch(
            f"/v1/segments/{a['id']}", json={"rule": {"any": [DE, {"segment": c["id"]}]}}
        )
        assert response.status_code == 422
        assert errors(response) == [("rule.any[1].segment", "cycle")]
        # a -> a
        response = await client.patch(
            f"/v1/segments/{a['id']}", json={"rule": {"segment": a["id"]}}
        )
        assert errors(response) == [("rule.segment", "cycle")]
        # no cycle: c may refer to a directly as well
        rule = {"all": [{"segment": a["id"]}, {"segment": b["id"]}]}
        assert (
            await client.patch(f"/v1/segments/{c['id']}", json={"rule": rule})
        ).status_code == 200

    async def test_built_in_only_toggles_enabled(self, client, session):
        builtin = await segment(session, "Champions", kind="rfm", key="champions")
        url = f"/v1/segments/{builtin.id}"
        response = await client.patch(url, json={"name": "Best"})
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:segment-read-only"
        response = await client.patch(url, json={"enabled": False})
        assert response.status_code == 200
        assert response.json()["enabled"] is False

    async def test_unknown_is_404(self, client):
        response = await client.patch(f"/v1/segments/{uuid.uuid4()}", json={"name": "x"})
        assert response.status_code == 404


class TestDelete:
    async def test_soft_delete(self, client, session):
        created = await create(client)
        assert (await client.delete(f"/v1/segments/{created['id']}")).status_code == 204
        row = await session.scalar(
            select(Segment)
            .where(Segment.id == uuid.UUID(created["id"]))
            .execution_options(populate_existing=True)
        )
        assert row is not None and row.deleted_at is not None
        assert (await client.delete(f"/v1/segments/{created['id']}")).status_code == 404

    async def test_referenced_segment_cannot_be_deleted(self, client):
        base = await create(client, name="base")
        await create(client, name="user", rule={"any": [DE, {"not": {"segment": base["id"]}}]})
        response = await client.delete(f"/v1/segments/{base['id']}")
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:segment-in-use"
        assert "user" in response.json()["detail"]

    async def test_reference_from_a_deleted_segment_does_not_block(self, client):
        base = await create(client, name="base")
        user = await create(client, name="user", rule={"segment": base["id"]})
        await client.delete(f"/v1/segments/{user['id']}")
        assert (await client.delete(f"/v1/segments/{base['id']}")).status_code == 204

    async def test_built_in_cannot_be_deleted(self, client, session):
        builtin = await segment(session, "Dormant", kind="lifecycle", key="dormant")
        response = await client.delete(f"/v1/segments/{builtin.id}")
        assert response.status_code == 409

    async def test_unknown_is_404(self, client):
        assert (await client.delete(f"/v1/segments/{uuid.uuid4()}")).status_code == 404


class TestScopes:
    async def test_reader_may_read_and_preview_but_not_write(self, client, reader):
        created = await create(client)
        assert (await reader.get("/v1/segments")).status_code == 200
        assert (await reader.get(f"/v1/segments/{created['id']}")).status_code == 200
        assert (await reader.post("/v1/segments/preview", json={"rule": DE})).status_code == 200
        assert (
            await reader.post("/v1/segments", json={"name": "y", "rule": DE})
        ).status_code == 403
        url = f"/v1/segments/{created['id']}"
        assert (await reader.patch(url, json={"name": "y"})).status_code == 403
        assert (await reader.delete(url)).status_code == 403


class TestDeleteWithMembers:
    async def test_members_exit_with_one_event_each(self, client, session):
        await customer(session, "c-de-1", country="DE")
        await customer(session, "c-de-2", country="DE")
        created = await create(client, name="germans", rule=DE)
        segment = await session.get(Segment, uuid.UUID(created["id"]))
        assert segment is not None
        await evaluate_segment_full(session, segment, datetime.now(UTC))
        assert await members(session, segment.id) == ["c-de-1", "c-de-2"]

        assert (await client.delete(f"/v1/segments/{created['id']}")).status_code == 204

        assert await members(session, segment.id) == []
        assert await changes(session, segment.id) == [
            ("c-de-1", "entered"),
            ("c-de-2", "entered"),
            ("c-de-1", "exited"),
            ("c-de-2", "exited"),
        ]
