"""``DELETE /v1/customers/{external_id}``: erasure of a customer and its merge group."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import cast, func, insert, or_, select, update
from sqlalchemy.types import Text

from crm_profile.gdpr.repository import customer_tables
from crm_profile.models import (
    BehaviourEvent,
    Customer,
    ErasureAudit,
    ExportJob,
    audit_table,
    dead_letter_table,
    metadata,
)
from tests.profile.conftest import published, put_customer
from tests.profile.gdpr.factories import Seeded, add_dead_letter, counts, merge, seed

ERASED = "crm.profile.customer.erased"


async def mentions(session, *values: str) -> list[str]:
    """``table.column`` of every text or JSON value in the profile schema containing a value.

    The outbox is left out: here nothing relays it, so it still holds the events of the test
    (the erasure event included); the e2e tests check it once the relay has emptied it.
    """
    found = []
    for table in metadata.sorted_tables:
        if table.name == "outbox":
            continue
        for column in table.c:
            if column.type.python_type not in (str, dict, list, bytes):
                continue
            as_text = (
                func.encode(column, "escape")
                if column.type.python_type is bytes
                else cast(column, Text)
            )
            hit = or_(*(func.strpos(as_text, v) > 0 for v in values))
            stmt = select(func.count()).select_from(table).where(hit)
            if (await session.execute(stmt)).scalar_one():
                found.append(f"{table.name}.{column.name}")
    return found


def identifiers(*people: Seeded) -> list[str]:
    """Everything that identifies ``people``."""
    return [v for p in people for v in (p.external_id, p.email, p.phone, p.anonymous_id)]


class TestEraseCustomer:
    async def test_anonymous(self, anonymous):
        assert (await anonymous.delete("/v1/customers/ge-0")).status_code == 401

    async def test_write_scope_is_not_enough(self, writer, client):
        await put_customer(client, "ge-00")
        assert (await writer.delete("/v1/customers/ge-00")).status_code == 403
        assert (await client.get("/v1/customers/ge-00")).status_code == 200

    async def test_unknown_customer(self, client, session):
        response = await client.delete("/v1/customers/nobody-here")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"
        assert await published(session, ERASED) == []

    async def test_invalid_external_id(self, client):
        response = await client.delete("/v1/customers/" + "x" * 129)
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.external_id"]

    async def test_deletes_every_row_of_the_group_and_nothing_else(self, client, session):
        before = await counts(session)
        survivor = await seed(client, session, "ge-1", 11)
        duplicate = await seed(client, session, "ge-2", 12)
        bystander = await seed(client, session, "ge-3", 13)
        await merge(session, survivor, duplicate)
        job = (await client.post("/v1/customers/ge-1/export")).json()
        seeded = await counts(session)

        response = await client.delete("/v1/customers/ge-1")
        assert response.status_code == 204
        assert response.content == b""
        assert await mentions(session, *identifiers(survivor, duplicate)) == []
        assert await mentions(session, *identifiers(bystander)) != []
        after = await counts(session)
        for table in customer_tables():  # exactly the bystander's rows are left
            bystander_rows = (seeded[table.name] - before[table.name]) // 3
            if table.name in ("merge", "export_job"):
                bystander_rows = 0
            assert after[table.name] - before[table.name] == bystander_rows, table.name
        assert await session.get(ExportJob, uuid.UUID(job["id"])) is None
        assert (await client.get(f"/v1/exports/{job['id']}")).status_code == 404

    async def test_writes_an_audit_without_personal_data(self, client, session):
        survivor = await seed(client, session, "ge-4", 14)
        duplicate = await seed(client, session, "ge-5", 15)
        await merge(session, survivor, duplicate)
        assert (await client.delete("/v1/customers/ge-4")).status_code == 204
        [record] = (
            (
                await session.execute(
                    select(ErasureAudit).where(ErasureAudit.customer_id == survivor.id)
                )
            )
            .scalars()
            .all()
        )
        assert record.requested_by == "key:local-admin"
        assert record.counts["customer"] == 2
        assert record.counts["behaviour_event"] == 4  # two each, one of them anonymous
        assert record.counts["order"] == 2 and record.counts["order_line"] == 2
        assert record.counts["merge"] == 1 and record.counts["consent_history"] == 2
        [entry] = (
            await session.execute(
                select(audit_table).where(
                    audit_table.c.action == "customer.erased",
                    audit_table.c.target_id == str(survivor.id),
                )
            )
        ).all()
        assert entry.target_id == str(survivor.id)
        assert entry.details == {"erasure_id": str(record.id)}

    async def test_publishes_erased_once(self, client, session):
        survivor = await seed(client, session, "ge-6", 16)
        duplicate = await seed(client, session, "ge-7", 17)
        await merge(session, survivor, duplicate)
        assert (await client.delete("/v1/customers/ge-6")).status_code == 204
        [event] = await published(session, ERASED)
        record = (
            await session.execute(
                select(ErasureAudit).where(ErasureAudit.customer_id == survivor.id)
            )
        ).scalar_one()
        assert event == {
            "customer_id": str(survivor.id),
            "customer_external_id": "ge-6",
            "erased_external_ids": ["ge-6", "ge-7"],
            "erased_at": event["erased_at"],
            "erased_customer_ids": [str(survivor.id), str(duplicate.id)],
        }
        assert event["erased_at"].startswith(record.erased_at.date().isoformat())

    async def test_a_duplicates_id_erases_its_survivors_group(self, client, session):
        survivor = await seed(client, session, "ge-8", 18)
        duplicate = await seed(client, session, "ge-9", 19)
        await merge(session, survivor, duplicate)
        assert (await client.delete("/v1/customers/ge-9")).status_code == 204
        assert (await client.get("/v1/customers/ge-8")).status_code == 404
        assert (await published(session, ERASED))[0]["customer_external_id"] == "ge-8"

    async def test_anonymises_audit_entries_naming_the_customer(self, client, session):
        person = await seed(client, session, "ge-10", 20)
        await session.execute(
            insert(audit_table),
            [
                {
                    "actor": "key:shop",
                    "action": "tag.added",
                    "target_type": "customer",
                    "target_id": "ge-10",
                    "details": {"tag": "vip"},
                },
                {
                    "actor": "customer:ge-10",
                    "action": "consent.changed",
                    "target_type": "consent",
                    "target_id": "email",
                    "details": {},
                },
                {
                    "actor": "key:shop",
                    "action": "customer.merged",
                    "target_type": "merge",
                    "target_id": "m-1",
                    "details": {"duplicate": "ge-10"},
                },
                {
                    "actor": "key:shop",
                    "action": "tag.added",
                    "target_type": "customer",
                    "target_id": "ge-other",
                    "details": {"tag": "vip"},
                },
            ],
        )
        assert (await client.delete("/v1/customers/ge-10")).status_code == 204
        rows = (
            await session.execute(
                select(audit_table)
                .where(audit_table.c.created_at >= func.now())  # this test's transaction only
                .order_by(audit_table.c.id)
            )
        ).all()
        kept = [(r.actor, r.action, r.target_id, r.details) for r in rows]
        assert ("key:shop", "tag.added", "erased", {}) in kept
        assert ("customer:erased", "consent.changed", "erased", {}) in kept
        assert ("key:shop", "customer.merged", "erased", {}) in kept
        assert ("key:shop", "tag.added", "ge-other", {"tag": "vip"}) in kept
        assert await mentions(session, *identifiers(person)) == []

    async def test_deletes_dead_letters_naming_the_customer(self, client, session):
        person = await seed(client, session, "ge-11", 21)
        await add_dead_letter(session, "ge-11", {"customer_external_id": "ge-11"})
        await add_dead_letter(session, "x", {"email": person.email})
        await add_dead_letter(session, "ge-110", {"customer_external_id": "ge-110"})
        assert (await client.delete("/v1/customers/ge-11")).status_code == 204
        mine = dead_letter_table.c.headers["ce-subject"].astext.in_(["ge-11", "x", "ge-110"])
        left = await session.execute(select(dead_letter_table.c.headers).where(mine))
        assert left.scalars().all() == [{"ce-subject": "ge-110"}]

    async def test_keeps_anonymous_events_of_devices_never_linked(self, client, session):
        await seed(client, session, "ge-12", 22)
        session.add(
            BehaviourEvent(
                event_id="ev-stranger",
                type="page_view",
                anonymous_id="device-stranger",
                occurred_at=func.now(),
                properties={},
            )
        )
        await session.flush()
        assert (await client.delete("/v1/customers/ge-12")).status_code == 204
        assert await session.get(BehaviourEvent, "ev-stranger") is not None


class TestAfterErasure:
    async def test_lookups_find_nothing(self, client, session):
        await seed(client, session, "ga-1", 31)
        assert (await client.delete("/v1/customers/ga-1")).status_code == 204
        assert (await client.get("/v1/customers/ga-1")).status_code == 404
        assert (await client.post("/v1/customers/ga-1/export")).status_code == 404
        assert (await client.delete("/v1/customers/ga-1")).status_code == 404
        listed = (
            await client.get("/v1/customers", params={"email": "person31@example.com"})
        ).json()
        assert listed["items"] == []

    async def test_the_same_id_starts_over_as_a_new_empty_customer(self, client, session):
        old = await seed(client, session, "ga-2", 32)
        assert (await client.delete("/v1/customers/ga-2")).status_code == 204
        response = await client.put("/v1/customers/ga-2", json={})
        assert response.status_code == 201
        body = response.json()
        assert body["id"] != str(old.id)
        assert body["email"] is None and body["first_name"] is None
        assert body["tags"] == [] and body["merged_external_ids"] == []
        export = (await client.post("/v1/customers/ga-2/export")).json()
        job = await session.get(ExportJob, uuid.UUID(export["id"]))
        assert job is not None
        tables = job.parts["profile"]["tables"]
        assert [len(tables[t]) for t in ("behaviour_event", "order", "consent")] == [0, 0, 0]


class TestConcurrentChanges:
    async def test_a_customer_merged_since_it_was_resolved_is_a_409(self, client, session):
        from crm_common.auth import ApiKeyPrincipal
        from crm_profile.customers.errors import CustomerMerged
        from crm_profile.gdpr import service

        first = await seed(client, session, "gr-1", 61)
        second = await seed(client, session, "gr-2", 62)
        resolved = await session.get(Customer, first.id)
        assert resolved is not None
        await session.execute(
            update(Customer.__table__)
            .where(Customer.id == first.id)
            .values(status="merged", merged_into_id=second.id)
        )
        admin = ApiKeyPrincipal("ops", frozenset({"*"}))
        with pytest.raises(CustomerMerged):
            await service.erase(session, resolved, admin)
        with pytest.raises(CustomerMerged):
            await service.request_export(session, resolved, admin)

    async def test_a_customer_erased_since_it_was_resolved_is_a_404(self, client, session):
        from crm_common.auth import ApiKeyPrincipal
        from crm_profile.customers.errors import CustomerNotFound
        from crm_profile.gdpr import service

        person = await seed(client, session, "gr-3", 63)
        resolved = await session.get(Customer, person.id)
        assert resolved is not None
        admin = ApiKeyPrincipal("ops", frozenset({"*"}))
        await service.erase(session, resolved, admin)
        with pytest.raises(CustomerNotFound):
            await service.erase(session, resolved, admin)
