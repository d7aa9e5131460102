"""``POST /v1/customers/{external_id}/merge``, ``GET /v1/merges/{id}``, ``GET .../merges``."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import select

from crm_profile.models import (
    BehaviourEvent,
    Consent,
    CustomerIdentity,
    CustomerTag,
    Merge,
    Order,
)
from tests.profile.identity.conftest import (
    add_consent,
    add_event,
    add_order,
    audit_actions,
    count,
    customer_row,
    group_rows,
    published,
    put_customer,
)

MERGED = "crm.profile.customer.merged"
UPDATED = "crm.profile.customer.updated"
CONSENT = "crm.profile.consent.changed"
ALL = (MERGED, UPDATED, CONSENT)


async def merge(client, survivor, duplicate, **extra):
    return await client.post(
        f"/v1/customers/{survivor}/merge", json={"duplicate_external_id": duplicate, **extra}
    )


async def merged(client, survivor, duplicate, **extra):
    response = await merge(client, survivor, duplicate, **extra)
    assert response.status_code == 201, response.text
    return response.json()


async def nothing_published(session):
    return all([await published(session, s) == [] for s in ALL])


class TestMerge:
    async def test_returns_the_merge_record(self, client):
        a = await put_customer(client, "mg-a", first_name="Ana")
        b = await put_customer(client, "mg-b", email="b@example.com", city="Porto")
        body = await merged(client, "mg-a", "mg-b", reason="same person, checked by support")
        assert uuid.UUID(body["id"])
        assert body["survivor_id"] == a["id"]
        assert body["survivor_external_id"] == "mg-a"
        assert body["duplicate_id"] == b["id"]
        assert body["duplicate_external_id"] == "mg-b"
        assert body["rule"] == "manual"
        assert body["reason"] == "same person, checked by support"
        assert body["filled_fields"] == ["city", "email"]
        assert body["merged_by"] == "key:local-admin"
        assert body["merged_at"]
        assert body["undone_at"] is None
        assert body["undone_by"] is None

    async def test_duplicate_folds_into_the_survivor(self, client, session):
        a = await put_customer(client, "mg-c", first_name="Ana")
        await put_customer(client, "mg-d")
        await merged(client, "mg-c", "mg-d")
        duplicate = await customer_row(session, "mg-d")
        assert duplicate.status == "merged"
        assert str(duplicate.merged_into_id) == a["id"]
        survivor = (await client.get("/v1/customers/mg-c")).json()
        assert survivor["merged_external_ids"] == ["mg-d"]
        assert (await client.get("/v1/customers/mg-d")).json()["id"] == a["id"]

    async def test_publishes_merged_once(self, client, session):
        a = await put_customer(client, "mg-e")
        b = await put_customer(client, "mg-f")
        body = await merged(client, "mg-e", "mg-f")
        assert await published(session, MERGED) == [
            {
                "merge_id": body["id"],
                "survivor_id": a["id"],
                "survivor_external_id": "mg-e",
                "duplicate_id": b["id"],
                "duplicate_external_id": "mg-f",
                "rule": "manual",
            }
        ]

    async def test_fills_only_the_survivors_empty_fields(self, client, session):
        await put_customer(
            client, "mg-g", email="keep@example.com", first_name="Ana", attributes={}
        )
        await put_customer(
            client,
            "mg-h",
            email="other@example.com",
            first_name="Anne",
            last_name="Silva",
            birthday="1990-04-02",
            registered_at="2024-01-02T03:04:05+01:00",
            attributes={"vip": True},
        )
        body = await merged(client, "mg-g", "mg-h")
        assert body["filled_fields"] == ["attributes", "birthday", "last_name", "registered_at"]
        survivor = (await client.get("/v1/customers/mg-g")).json()
        assert survivor["email"] == "keep@example.com"
        assert survivor["first_name"] == "Ana"
        assert survivor["last_name"] == "Silva"
        assert survivor["birthday"] == "1990-04-02"
        assert survivor["attributes"] == {"vip": True}
        record = (await session.execute(select(Merge).where(Merge.id == body["id"]))).scalar_one()
        assert record.filled_fields == {
            "attributes": {"vip": True},
            "birthday": "1990-04-02",
            "last_name": "Silva",
            "registered_at": "2024-01-02T02:04:05+00:00",
        }
        updated = await published(session, UPDATED)
        assert len(updated) == 1
        assert updated[0]["customer_external_id"] == "mg-g"
        assert updated[0]["changed_fields"] == [
            "attributes",
            "birthday",
            "last_name",
            "registered_at",
        ]
        assert updated[0]["last_name"] == "Silva"

    async def test_nothing_to_fill_publishes_no_update(self, client, session):
        await put_customer(client, "mg-i", city="Porto")
        await put_customer(client, "mg-j", city="Lisbon")
        assert (await merged(client, "mg-i", "mg-j"))["filled_fields"] == []
        assert await published(session, UPDATED) == []
        assert (await client.get("/v1/customers/mg-i")).json()["city"] == "Porto"

    async def test_nothing_is_moved_but_reads_take_the_group(self, client, session):
        await put_customer(client, "mg-k")
        await put_customer(client, "mg-l")
        a, b = await customer_row(session, "mg-k"), await customer_row(session, "mg-l")
        a_event, b_event = (
            await add_event(session, customer_id=a.id),
            await add_event(session, customer_id=b.id),
        )
        a_order, b_order = await add_order(session, a), await add_order(session, b)
        session.add_all(
            [
                CustomerIdentity(customer_id=b.id, kind="anonymous_id", value=f"{b.id}-dev"),
                CustomerTag(customer_id=b.id, tag="vip", origin="manual"),
            ]
        )
        await add_consent(session, b.id, "granted")
        await merged(client, "mg-k", "mg-l")
        for model in (BehaviourEvent, Order, CustomerIdentity, CustomerTag, Consent):
            assert await count(session, model, customer_id=b.id) == 1, model
        assert await group_rows(session, BehaviourEvent, a.id) == {a_event, b_event}
        assert await group_rows(session, Order, a.id) == {a_order, b_order}
        tags = (await client.get("/v1/customers/mg-k")).json()["tags"]
        assert tags == [{"tag": "vip", "origin": "manual"}]

    async def test_is_audited(self, client, session):
        await put_customer(client, "mg-m")
        await put_customer(client, "mg-n")
        body = await merged(client, "mg-m", "mg-n")
        assert await audit_actions(session, body["id"]) == ["customer.merged"]

    async def test_path_customer_resolves_to_its_survivor(self, client, session):
        a = await put_customer(client, "mg-o")
        await put_customer(client, "mg-p")
        await put_customer(client, "mg-q")
        await merged(client, "mg-o", "mg-p")
        body = await merged(client, "mg-p", "mg-q")
        assert body["survivor_id"] == a["id"]
        assert body["survivor_external_id"] == "mg-o"
        assert sorted((await client.get("/v1/customers/mg-o")).json()["merged_external_ids"]) == [
            "mg-p",
            "mg-q",
        ]

    async def test_duplicate_brings_its_own_group(self, client, session):
        a = await put_customer(client, "mg-r")
        await put_customer(client, "mg-s")
        await put_customer(client, "mg-t")
        await merged(client, "mg-s", "mg-t")
        await merged(client, "mg-r", "mg-s")
        assert (await client.get("/v1/customers/mg-t")).json()["id"] == a["id"]
        assert (await customer_row(session, "mg-t")).merged_into_id == (
            await customer_row(session, "mg-s")
        ).id  # the chain is kept, so undoing s→r brings t back with s

    async def test_merge_into_itself_is_409(self, client, session):
        await put_customer(client, "mg-u")
        response = await merge(client, "mg-u", "mg-u")
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:merge-into-self"
        assert await nothing_published(session)

    async def test_duplicate_already_merged_is_409(self, client, session):
        for name in ("mg-v1", "mg-v2", "mg-v3"):
            await put_customer(client, name)
        await merged(client, "mg-v1", "mg-v2")
        for survivor in ("mg-v1", "mg-v3"):  # into the same or into another customer
            response = await merge(client, survivor, "mg-v2")
            assert response.status_code == 409
            assert response.json()["type"] == "urn:crm:problem:already-merged"
        assert len(await published(session, MERGED)) == 1

    async def test_a_loop_is_409(self, client, session):
        await put_customer(client, "mg-w1")
        await put_customer(client, "mg-w2")
        await put_customer(client, "mg-w3")
        await merged(client, "mg-w2", "mg-w3")
        await merged(client, "mg-w1", "mg-w2")
        # w3 resolves to w1: merging w1 "into" w3 would make w1 its own duplicate.
        response = await merge(client, "mg-w3", "mg-w1")
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:merge-loop"
        assert len(await published(session, MERGED)) == 2
        assert (await customer_row(session, "mg-w1")).status == "active"

    async def test_unknown_customers_are_404(self, client, session):
        await put_customer(client, "mg-x")
        for survivor, duplicate in (("nobody", "mg-x"), ("mg-x", "nobody")):
            response = await merge(client, survivor, duplicate)
            assert response.status_code == 404
            assert response.json()["type"] == "urn:crm:problem:customer-not-found"
        assert await nothing_published(session)

    async def test_erased_customers_are_404(self, client, session):
        await put_customer(client, "mg-y1")
        await put_customer(client, "mg-y2")
        (await customer_row(session, "mg-y2")).status = "erased"
        await session.flush()
        assert (await merge(client, "mg-y1", "mg-y2")).status_code == 404
        assert (await merge(client, "mg-y2", "mg-y1")).status_code == 404

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({}, "body.duplicate_external_id"),
            ({"duplicate_external_id": ""}, "body.duplicate_external_id"),
            ({"duplicate_external_id": "a b"}, "body.duplicate_external_id"),
            ({"duplicate_external_id": 7}, "body.duplicate_external_id"),
            ({"duplicate_external_id": "x", "reason": "r" * 501}, "body.reason"),
            ({"duplicate_external_id": "x", "reason": ""}, "body.reason"),
            ({"duplicate_external_id": "x", "reason": ["no"]}, "body.reason"),
            ({"duplicate_external_id": "x", "rule": "email"}, "body.rule"),
        ],
    )
    async def test_bad_body_is_422_naming_the_field(self, client, session, body, field):
        await put_customer(client, "mg-z")
        response = await client.post("/v1/customers/mg-z/merge", json=body)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [field]
        assert await nothing_published(session)

    async def test_bad_path_is_422(self, client):
        response = await merge(client, "a%20b", "x")
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "path.external_id"

    async def test_needs_admin_scope(self, anonymous, writer, session):
        assert (await merge(anonymous, "a", "b")).status_code == 401
        response = await merge(writer, "a", "b")
        assert response.status_code == 403
        assert "profile:admin" in response.json()["detail"]


class TestMergeConsents:
    async def survivor_and_duplicate(self, client, session, name):
        await put_customer(client, f"{name}-s")
        await put_customer(client, f"{name}-d")
        return await customer_row(session, f"{name}-s"), await customer_row(session, f"{name}-d")

    async def test_duplicates_decision_where_the_survivor_has_none(self, client, session):
        s, d = await self.survivor_and_duplicate(client, session, "mc-1")
        await add_consent(session, d.id, "granted", days_ago=3, source="preference_center")
        decided = (
            await session.execute(select(Consent.decided_at).where(Consent.customer_id == d.id))
        ).scalar_one()
        await merged(client, "mc-1-s", "mc-1-d")
        events = await published(session, CONSENT)
        assert len(events) == 1
        event = events[0]
        assert event["customer_id"] == str(s.id)
        assert event["customer_external_id"] == "mc-1-s"
        assert (event["channel"], event["purpose"], event["status"]) == (
            "email",
            "marketing",
            "granted",
        )
        assert event["source"] == "preference_center"
        assert datetime.fromisoformat(event["decided_at"]) == decided

    async def test_most_recent_decision_wins(self, client, session):
        s, d = await self.survivor_and_duplicate(client, session, "mc-2")
        await add_consent(session, s.id, "granted", days_ago=5)
        await add_consent(session, d.id, "denied", days_ago=1)
        await add_consent(session, s.id, "denied", channel="sms", days_ago=1)
        await add_consent(session, d.id, "granted", channel="sms", days_ago=5)
        await merged(client, "mc-2-s", "mc-2-d")
        events = await published(session, CONSENT)
        assert [(e["channel"], e["status"], e["customer_external_id"]) for e in events] == [
            ("email", "denied", "mc-2-s")
        ]

    async def test_same_status_publishes_nothing(self, client, session):
        s, d = await self.survivor_and_duplicate(client, session, "mc-3")
        await add_consent(session, s.id, "granted", days_ago=5)
        await add_consent(session, d.id, "granted", days_ago=1)
        await merged(client, "mc-3-s", "mc-3-d")
        assert await published(session, CONSENT) == []

    async def test_each_changed_channel_and_purpose(self, client, session):
        s, d = await self.survivor_and_duplicate(client, session, "mc-4")
        await add_consent(session, d.id, "granted", channel="push")
        await add_consent(session, d.id, "denied", channel="sms", purpose="transactional")
        await merged(client, "mc-4-s", "mc-4-d")
        events = await published(session, CONSENT)
        assert [(e["channel"], e["purpose"], e["status"]) for e in events] == [
            ("push", "marketing", "granted"),
            ("sms", "transactional", "denied"),
        ]


class TestGetMerge:
    async def test_reads_one(self, client, reader):
        await put_customer(client, "gm-a")
        await put_customer(client, "gm-b")
        created = await merged(client, "gm-a", "gm-b", reason="support ticket 7")
        response = await reader.get(f"/v1/merges/{created['id']}")
        assert response.status_code == 200
        assert response.json() == created

    async def test_unknown_is_404(self, client):
        response = await client.get(f"/v1/merges/{uuid.uuid4()}")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:merge-not-found"

    async def test_malformed_id_is_422(self, client):
        response = await client.get("/v1/merges/not-a-uuid")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.merge_id"]

    async def test_needs_credentials(self, anonymous):
        assert (await anonymous.get(f"/v1/merges/{uuid.uuid4()}")).status_code == 401


class TestListMerges:
    async def test_lists_the_group_oldest_first(self, client, session):
        for name in ("lm-a", "lm-b", "lm-c", "lm-other1", "lm-other2"):
            await put_customer(client, name)
        first = await merged(client, "lm-a", "lm-b")
        second = await merged(client, "lm-b", "lm-c")  # resolves to lm-a
        await merged(client, "lm-other1", "lm-other2")
        for name in ("lm-a", "lm-b", "lm-c"):
            response = await client.get(f"/v1/customers/{name}/merges")
            assert response.status_code == 200
            body = response.json()
            assert [m["id"] for m in body["items"]] == [first["id"], second["id"]]
            assert body["next_cursor"] is None
        assert body["items"][1]["survivor_external_id"] == "lm-a"
        assert body["items"][1]["duplicate_external_id"] == "lm-c"

    async def test_keeps_undone_merges(self, client, session):
        await put_customer(client, "lm-d")
        await put_customer(client, "lm-e")
        record = await merged(client, "lm-d", "lm-e")
        await client.post(f"/v1/merges/{record['id']}/undo")
        for name in ("lm-d", "lm-e"):
            items = (await client.get(f"/v1/customers/{name}/merges")).json()["items"]
            assert [m["id"] for m in items] == [record["id"]]
            assert items[0]["undone_at"] is not None

    async def test_paginates(self, client, session):
        await put_customer(client, "lm-f")
        ids = []
        for i in range(3):
            await put_customer(client, f"lm-f{i}")
            ids.append((await merged(client, "lm-f", f"lm-f{i}"))["id"])
        seen, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            body = (await client.get("/v1/customers/lm-f/merges", params=params)).json()
            seen += [m["id"] for m in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == ids

    async def test_a_customer_without_merges_has_none(self, client, reader):
        await put_customer(client, "lm-g")
        body = (await reader.get("/v1/customers/lm-g/merges")).json()
        assert body == {"items": [], "next_cursor": None}

    async def test_unknown_customer_is_404(self, client):
        assert (await client.get("/v1/customers/nobody/merges")).status_code == 404

    async def test_bad_parameters(self, client):
        await put_customer(client, "lm-h")
        assert (
            await client.get("/v1/customers/lm-h/merges", params={"cursor": "bm9wZQ"})
        ).status_code == 400
        response = await client.get("/v1/customers/lm-h/merges", params={"limit": 0})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["query.limit"]

    async def test_needs_credentials(self, anonymous):
        assert (await anonymous.get("/v1/customers/lm-x/merges")).status_code == 401
