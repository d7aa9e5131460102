"""``POST /v1/merges/{id}/undo``: both customers as they were, plus what each received since."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from crm_profile.models import BehaviourEvent, CustomerIdentity, Order
from tests.profile.identity.conftest import (
    add_consent,
    add_event,
    add_order,
    audit_actions,
    customer_row,
    group_rows,
    published,
    put_customer,
)
from tests.profile.identity.test_merge import merged

UNMERGED = "crm.profile.customer.unmerged"
UPDATED = "crm.profile.customer.updated"
CONSENT = "crm.profile.consent.changed"


async def undone(client, merge_id):
    response = await client.post(f"/v1/merges/{merge_id}/undo")
    assert response.status_code == 200, response.text
    return response.json()


async def resolved(client, external_id):
    """External id of the customer a read of ``external_id`` returns."""
    return (await client.get(f"/v1/customers/{external_id}")).json()["external_id"]


class TestUndo:
    async def test_restores_both_customers(self, client, session):
        a = await put_customer(client, "un-a")
        b = await put_customer(client, "un-b")
        record = await merged(client, "un-a", "un-b")
        body = await undone(client, record["id"])
        assert body["id"] == record["id"]
        assert body["undone_at"] is not None
        assert body["undone_by"] == "key:local-admin"
        duplicate = await customer_row(session, "un-b")
        assert (duplicate.status, duplicate.merged_into_id) == ("active", None)
        assert (await client.get("/v1/customers/un-b")).json()["id"] == b["id"]
        survivor = (await client.get("/v1/customers/un-a")).json()
        assert survivor["id"] == a["id"]
        assert survivor["merged_external_ids"] == []
        assert (await client.get(f"/v1/merges/{record['id']}")).json() == body

    async def test_publishes_unmerged_once(self, client, session):
        a = await put_customer(client, "un-c")
        b = await put_customer(client, "un-d")
        record = await merged(client, "un-c", "un-d")
        await undone(client, record["id"])
        assert await published(session, UNMERGED) == [
            {
                "merge_id": record["id"],
                "survivor_id": a["id"],
                "survivor_external_id": "un-c",
                "duplicate_id": b["id"],
                "duplicate_external_id": "un-d",
            }
        ]

    async def test_is_audited(self, client, session):
        await put_customer(client, "un-e")
        await put_customer(client, "un-f")
        record = await merged(client, "un-e", "un-f")
        await undone(client, record["id"])
        assert await audit_actions(session, record["id"]) == [
            "customer.merged",
            "customer.unmerged",
        ]

    async def test_filled_fields_are_reverted_unless_changed_since(self, client, session):
        await put_customer(client, "un-g", first_name="Ana")
        await put_customer(
            client, "un-h", email="h@example.com", city="Porto", attributes={"vip": True}
        )
        record = await merged(client, "un-g", "un-h")
        assert record["filled_fields"] == ["attributes", "city", "email"]
        changed = await client.patch("/v1/customers/un-g", json={"city": "Lisbon"})
        assert changed.status_code == 200
        await undone(client, record["id"])
        survivor = (await client.get("/v1/customers/un-g")).json()
        assert survivor["email"] is None
        assert survivor["attributes"] == {}
        assert survivor["city"] == "Lisbon"  # changed after the merge: kept
        assert survivor["first_name"] == "Ana"
        duplicate = (await client.get("/v1/customers/un-h")).json()
        assert (duplicate["email"], duplicate["city"]) == ("h@example.com", "Porto")
        updates = await published(session, UPDATED)
        # merge filled three fields, the PATCH changed one, the undo reverted two
        assert [u["changed_fields"] for u in updates] == [
            ["attributes", "city", "email"],
            ["city"],
            ["attributes", "email"],
        ]
        assert updates[-1]["email"] is None

    async def test_nothing_reverted_publishes_no_update(self, client, session):
        await put_customer(client, "un-i", city="Porto")
        await put_customer(client, "un-j", city="Lisbon")
        record = await merged(client, "un-i", "un-j")
        await undone(client, record["id"])
        assert await published(session, UPDATED) == []

    async def test_what_each_received_since_stays_with_it(self, client, session):
        await put_customer(client, "un-k")
        await put_customer(client, "un-l")
        a, b = await customer_row(session, "un-k"), await customer_row(session, "un-l")
        early = {
            "a_event": await add_event(session, customer_id=a.id),
            "b_event": await add_event(session, customer_id=b.id),
            "a_order": await add_order(session, a),
            "b_order": await add_order(session, b),
        }
        record = await merged(client, "un-k", "un-l")
        # Sent for the duplicate's own external id while it is merged:
        late_event = await add_event(session, customer_id=b.id, customer_external_id="un-l")
        late_order = await add_order(session, b)
        late_link = await client.post(
            "/v1/identify",
            json={"customer_external_id": "un-l", "anonymous_id": f"{uuid.uuid4()}"},
        )
        assert late_link.status_code == 201
        # ...they show under the survivor while merged,
        assert await group_rows(session, BehaviourEvent, a.id) == {
            early["a_event"],
            early["b_event"],
            late_event,
        }
        assert await group_rows(session, Order, a.id) == {
            early["a_order"],
            early["b_order"],
            late_order,
        }
        await undone(client, record["id"])
        # ...and under the duplicate once the merge is undone.
        assert await group_rows(session, BehaviourEvent, a.id) == {early["a_event"]}
        assert await group_rows(session, BehaviourEvent, b.id) == {early["b_event"], late_event}
        assert await group_rows(session, Order, a.id) == {early["a_order"]}
        assert await group_rows(session, Order, b.id) == {early["b_order"], late_order}
        link = await session.scalar(
            select(CustomerIdentity.customer_id).where(
                CustomerIdentity.value == late_link.json()["anonymous_id"]
            )
        )
        assert link == b.id

    async def test_undoing_twice_is_409(self, client, session):
        await put_customer(client, "un-m")
        await put_customer(client, "un-n")
        record = await merged(client, "un-m", "un-n")
        await undone(client, record["id"])
        response = await client.post(f"/v1/merges/{record['id']}/undo")
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:merge-already-undone"
        assert len(await published(session, UNMERGED)) == 1

    async def test_merging_again_after_an_undo_is_a_new_merge(self, client, session):
        await put_customer(client, "un-o")
        await put_customer(client, "un-p")
        first = await merged(client, "un-o", "un-p")
        await undone(client, first["id"])
        second = await merged(client, "un-o", "un-p")
        assert second["id"] != first["id"]
        assert await resolved(client, "un-p") == "un-o"
        assert (await client.post(f"/v1/merges/{first['id']}/undo")).status_code == 409

    async def test_erased_customers_cannot_be_restored(self, client, session):
        await put_customer(client, "un-q")
        await put_customer(client, "un-r")
        record = await merged(client, "un-q", "un-r")
        for name in ("un-q", "un-r"):
            (await customer_row(session, name)).status = "erased"
        await session.flush()
        response = await client.post(f"/v1/merges/{record['id']}/undo")
        assert response.status_code == 409
        assert response.json()["type"] == "urn:crm:problem:merge-not-undoable"
        assert await published(session, UNMERGED) == []

    async def test_unknown_merge_is_404(self, client):
        response = await client.post(f"/v1/merges/{uuid.uuid4()}/undo")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:merge-not-found"

    async def test_malformed_id_is_422(self, client):
        response = await client.post("/v1/merges/42/undo")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.merge_id"]

    async def test_needs_admin_scope(self, anonymous, writer):
        path = f"/v1/merges/{uuid.uuid4()}/undo"
        assert (await anonymous.post(path)).status_code == 401
        assert (await writer.post(path)).status_code == 403


class TestUndoChains:
    async def chain(self, client, prefix):
        """``a`` merged into ``b``, then ``b`` into ``c``: both merges."""
        for name in "abc":
            await put_customer(client, f"{prefix}-{name}")
        first = await merged(client, f"{prefix}-b", f"{prefix}-a")
        second = await merged(client, f"{prefix}-c", f"{prefix}-b")
        assert await resolved(client, f"{prefix}-a") == f"{prefix}-c"
        return first, second

    async def test_undoing_the_later_merge_brings_the_duplicate_back_with_its_group(
        self, client, session
    ):
        _, second = await self.chain(client, "ch1")
        await undone(client, second["id"])
        assert await resolved(client, "ch1-a") == "ch1-b"
        assert await resolved(client, "ch1-b") == "ch1-b"
        assert (await client.get("/v1/customers/ch1-b")).json()["merged_external_ids"] == ["ch1-a"]
        assert (await client.get("/v1/customers/ch1-c")).json()["merged_external_ids"] == []
        a = await customer_row(session, "ch1-a")
        event = await add_event(session, customer_id=a.id)
        assert await group_rows(session, BehaviourEvent, a.merged_into_id) == {event}

    async def test_undoing_the_earlier_merge_keeps_the_later_one(self, client, session):
        first, _ = await self.chain(client, "ch2")
        await undone(client, first["id"])
        assert await resolved(client, "ch2-a") == "ch2-a"
        assert await resolved(client, "ch2-b") == "ch2-c"
        assert (await client.get("/v1/customers/ch2-c")).json()["merged_external_ids"] == ["ch2-b"]

    async def test_undoing_both_in_any_order(self, client, session):
        first, second = await self.chain(client, "ch3")
        await undone(client, second["id"])
        await undone(client, first["id"])
        for name in "abc":
            assert await resolved(client, f"ch3-{name}") == f"ch3-{name}"

    async def test_consent_of_the_whole_chain_is_withdrawn_from_the_top(self, client, session):
        for name in "abc":
            await put_customer(client, f"ch4-{name}")
        a = await customer_row(session, "ch4-a")
        await add_consent(session, a.id, "granted")
        first = await merged(client, "ch4-b", "ch4-a")
        await merged(client, "ch4-c", "ch4-b")
        before = await published(session, CONSENT)
        assert [e["customer_external_id"] for e in before] == ["ch4-b", "ch4-c"]
        await undone(client, first["id"])
        events = (await published(session, CONSENT))[len(before) :]
        assert [(e["customer_external_id"], e["status"], e["source"]) for e in events] == [
            ("ch4-c", "denied", "merge_undone")
        ]


class TestUndoConsents:
    async def pair(self, client, session, name):
        await put_customer(client, f"{name}-s")
        await put_customer(client, f"{name}-d")
        return await customer_row(session, f"{name}-s"), await customer_row(session, f"{name}-d")

    async def consents_after_undo(self, client, session, name):
        record = await merged(client, f"{name}-s", f"{name}-d")
        before = len(await published(session, CONSENT))
        await undone(client, record["id"])
        return [
            (e["customer_external_id"], e["channel"], e["status"], e["source"])
            for e in (await published(session, CONSENT))[before:]
        ]

    async def test_a_grant_only_the_duplicate_gave_is_withdrawn_from_the_survivor(
        self, client, session
    ):
        _, d = await self.pair(client, session, "uc-1")
        await add_consent(session, d.id, "granted", source="app")
        assert await self.consents_after_undo(client, session, "uc-1") == [
            ("uc-1-s", "email", "denied", "merge_undone")
        ]

    async def test_survivor_gets_its_own_decision_back(self, client, session):
        s, d = await self.pair(client, session, "uc-2")
        await add_consent(session, s.id, "granted", days_ago=5, source="web")
        await add_consent(session, d.id, "denied", days_ago=1, source="app")
        assert await self.consents_after_undo(client, session, "uc-2") == [
            ("uc-2-s", "email", "granted", "web")
        ]

    async def test_duplicate_gets_its_own_decision_back(self, client, session):
        s, d = await self.pair(client, session, "uc-3")
        await add_consent(session, s.id, "denied", days_ago=1, source="web")
        await add_consent(session, d.id, "granted", days_ago=5, source="app")
        assert await self.consents_after_undo(client, session, "uc-3") == [
            ("uc-3-d", "email", "granted", "app")
        ]

    @pytest.mark.parametrize("status", ["granted", "denied"])
    async def test_unchanged_views_publish_nothing(self, client, session, status):
        s, d = await self.pair(client, session, f"uc-4{status[0]}")
        await add_consent(session, s.id, status, days_ago=1)
        await add_consent(session, d.id, status, days_ago=5)
        assert await self.consents_after_undo(client, session, f"uc-4{status[0]}") == []

    async def test_a_denial_only_the_duplicate_gave_publishes_nothing(self, client, session):
        _, d = await self.pair(client, session, "uc-5")
        await add_consent(session, d.id, "denied")
        assert await self.consents_after_undo(client, session, "uc-5") == []
