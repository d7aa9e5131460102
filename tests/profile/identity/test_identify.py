"""``POST /v1/identify``: linking anonymous ids, attaching anonymous events, conflicts, events."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from crm_profile.models import BehaviourEvent, CustomerIdentity
from tests.profile.identity.conftest import add_event, count, customer_row, published, put_customer

#: Anonymous ids unique to this run (other suites may commit links of their own).
A = uuid.uuid4().hex[:8]
LINKED = "crm.profile.identity.linked"
CREATED = "crm.profile.customer.created"


async def event_owner(session, event_id):
    """``customer_id`` of a stored behaviour event."""
    return (
        await session.execute(
            select(BehaviourEvent.customer_id).where(BehaviourEvent.event_id == event_id)
        )
    ).scalar_one()


class TestIdentify:
    async def test_first_link_is_201_and_published_once(self, client, session):
        customer = await put_customer(client, "id-1")
        response = await client.post(
            "/v1/identify", json={"customer_external_id": "id-1", "anonymous_id": f"{A}-dev-1"}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["customer_id"] == customer["id"]
        assert body["customer_external_id"] == "id-1"
        assert body["anonymous_id"] == f"{A}-dev-1"
        assert body["events_linked"] == 0
        assert body["linked_at"]
        assert await published(session, LINKED) == [
            {"customer_external_id": "id-1", "anonymous_id": f"{A}-dev-1"}
        ]
        assert await count(session, CustomerIdentity, value=f"{A}-dev-1", kind="anonymous_id") == 1

    async def test_repeating_the_same_link_is_200_and_publishes_nothing_more(self, client, session):
        await put_customer(client, "id-2")
        link = {"customer_external_id": "id-2", "anonymous_id": f"{A}-dev-2"}
        assert (await client.post("/v1/identify", json=link)).status_code == 201
        again = await client.post("/v1/identify", json=link)
        assert again.status_code == 200
        assert again.json()["customer_external_id"] == "id-2"
        assert len(await published(session, LINKED)) == 1
        assert await count(session, CustomerIdentity, value=f"{A}-dev-2") == 1

    async def test_anonymous_events_join_the_customer(self, client, session):
        customer = await put_customer(client, "id-3")
        before = [await add_event(session, anonymous_id=f"{A}-dev-3") for _ in range(3)]
        other = await add_event(session, anonymous_id=f"{A}-dev-other")
        response = await client.post(
            "/v1/identify", json={"customer_external_id": "id-3", "anonymous_id": f"{A}-dev-3"}
        )
        assert response.json()["events_linked"] == 3
        for event_id in before:
            assert str(await event_owner(session, event_id)) == customer["id"]
        assert await event_owner(session, other) is None

    async def test_events_of_another_customer_keep_their_owner(self, client, session):
        await put_customer(client, "id-4")
        owner = await put_customer(client, "id-4b")
        owned = await add_event(
            session,
            anonymous_id=f"{A}-dev-4",
            customer_id=(await customer_row(session, "id-4b")).id,
            customer_external_id="id-4b",
        )
        await client.post(
            "/v1/identify", json={"customer_external_id": "id-4", "anonymous_id": f"{A}-dev-4"}
        )
        assert str(await event_owner(session, owned)) == owner["id"]

    async def test_events_arriving_anonymously_later_join_on_a_repeat(self, client, session):
        customer = await put_customer(client, "id-5")
        link = {"customer_external_id": "id-5", "anonymous_id": f"{A}-dev-5"}
        await client.post("/v1/identify", json=link)
        late = await add_event(session, anonymous_id=f"{A}-dev-5")
        again = await client.post("/v1/identify", json=link)
        assert again.json()["events_linked"] == 1
        assert str(await event_owner(session, late)) == customer["id"]

    async def test_unknown_customer_is_created_bare(self, client, session):
        response = await client.post(
            "/v1/identify", json={"customer_external_id": "id-new", "anonymous_id": f"{A}-dev-6"}
        )
        assert response.status_code == 201
        created = await published(session, CREATED)
        assert [e["customer_external_id"] for e in created] == ["id-new"]
        assert created[0]["changed_fields"] == []
        assert (await client.get("/v1/customers/id-new")).json()["id"] == response.json()[
            "customer_id"
        ]

    async def test_anonymous_id_of_another_customer_is_409(self, client, session):
        await put_customer(client, "id-7a")
        await put_customer(client, "id-7b")
        await client.post(
            "/v1/identify", json={"customer_external_id": "id-7a", "anonymous_id": f"{A}-dev-7"}
        )
        response = await client.post(
            "/v1/identify", json={"customer_external_id": "id-7b", "anonymous_id": f"{A}-dev-7"}
        )
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:anonymous-id-taken"
        assert len(await published(session, LINKED)) == 1

    async def test_conflict_does_not_create_the_unknown_customer(self, client, session):
        await put_customer(client, "id-8a")
        await client.post(
            "/v1/identify", json={"customer_external_id": "id-8a", "anonymous_id": f"{A}-dev-8"}
        )
        response = await client.post(
            "/v1/identify",
            json={"customer_external_id": "id-8-unknown", "anonymous_id": f"{A}-dev-8"},
        )
        assert response.status_code == 409
        assert (await client.get("/v1/customers/id-8-unknown")).status_code == 404

    async def test_linked_to_a_member_of_the_same_merge_group_is_200(self, client, session):
        await put_customer(client, "id-9a")
        await put_customer(client, "id-9b")
        await client.post(
            "/v1/identify", json={"customer_external_id": "id-9b", "anonymous_id": f"{A}-dev-9"}
        )
        merged = await client.post(
            "/v1/customers/id-9a/merge", json={"duplicate_external_id": "id-9b"}
        )
        assert merged.status_code == 201
        response = await client.post(
            "/v1/identify", json={"customer_external_id": "id-9a", "anonymous_id": f"{A}-dev-9"}
        )
        assert response.status_code == 200
        # The link stays with the customer it was made for, so an undo keeps it there.
        assert response.json()["customer_external_id"] == "id-9b"
        assert len(await published(session, LINKED)) == 1

    async def test_link_for_a_merged_customer_stays_with_it(self, client, session):
        await put_customer(client, "id-10a")
        dup = await put_customer(client, "id-10b")
        await client.post("/v1/customers/id-10a/merge", json={"duplicate_external_id": "id-10b"})
        response = await client.post(
            "/v1/identify", json={"customer_external_id": "id-10b", "anonymous_id": f"{A}-dev-10"}
        )
        assert response.status_code == 201
        assert response.json()["customer_id"] == dup["id"]
        assert await published(session, LINKED) == [
            {"customer_external_id": "id-10b", "anonymous_id": f"{A}-dev-10"}
        ]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"anonymous_id": "dev"}, "body.customer_external_id"),
            ({"customer_external_id": "c"}, "body.anonymous_id"),
            ({"customer_external_id": "a b", "anonymous_id": "dev"}, "body.customer_external_id"),
            ({"customer_external_id": "c", "anonymous_id": ""}, "body.anonymous_id"),
            ({"customer_external_id": "c", "anonymous_id": "has space"}, "body.anonymous_id"),
            ({"customer_external_id": "c", "anonymous_id": "x" * 129}, "body.anonymous_id"),
            ({"customer_external_id": "c", "anonymous_id": 12}, "body.anonymous_id"),
            ({"customer_external_id": "c", "anonymous_id": "d", "extra": 1}, "body.extra"),
        ],
    )
    async def test_bad_input_is_422_naming_the_field(self, client, session, body, field):
        response = await client.post("/v1/identify", json=body)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]
        assert await published(session, LINKED) == []

    async def test_needs_credentials(self, anonymous):
        response = await anonymous.post(
            "/v1/identify", json={"customer_external_id": "c", "anonymous_id": "d"}
        )
        assert response.status_code == 401

    async def test_needs_write_scope(self, reader):
        response = await reader.post(
            "/v1/identify", json={"customer_external_id": "c", "anonymous_id": "d"}
        )
        assert response.status_code == 403

    async def test_write_scope_is_enough(self, writer):
        response = await writer.post(
            "/v1/identify", json={"customer_external_id": "c-w", "anonymous_id": f"{A}-dev-w"}
        )
        assert response.status_code == 201
