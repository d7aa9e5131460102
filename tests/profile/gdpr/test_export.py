"""``POST /v1/customers/{external_id}/export`` and ``GET /v1/exports/{id}``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_profile.config import settings
from crm_profile.gdpr.service import store_part
from crm_profile.models import ExportJob, audit_table
from tests.profile.conftest import published, put_customer
from tests.profile.gdpr.factories import merge, seed

REQUESTED = "crm.profile.export.requested"


async def request(client: AsyncClient, external_id: str) -> dict[str, Any]:
    """Request an export and return the job."""
    response = await client.post(f"/v1/customers/{external_id}/export")
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


async def document(
    client: AsyncClient,
    session: AsyncSession,
    external_id: str,
    segment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The finished export document of ``external_id`` (segment's part filled in)."""
    job = await request(client, external_id)
    await store_part(session, uuid.UUID(job["id"]), "segment", segment or {"customers": []})
    response = await client.get(f"/v1/exports/{job['id']}")
    assert response.status_code == 200
    assert response.json()["status"] == "done"
    done: dict[str, Any] = response.json()["document"]
    return done


class TestRequestExport:
    async def test_anonymous(self, anonymous):
        assert (await anonymous.post("/v1/customers/gx-1/export")).status_code == 401

    async def test_write_scope_is_not_enough(self, writer, client):
        await put_customer(client, "gx-2")
        response = await writer.post("/v1/customers/gx-2/export")
        assert response.status_code == 403

    async def test_unknown_customer(self, client):
        response = await client.post("/v1/customers/nobody/export")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"

    async def test_invalid_external_id(self, client):
        response = await client.post("/v1/customers/bad%20id/export")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.external_id"]

    async def test_creates_a_collecting_job_and_publishes_the_request(self, client, session):
        body = await put_customer(client, "gx-3", email="gx3@example.com")
        response = await client.post("/v1/customers/gx-3/export")
        assert response.status_code == 202
        job = response.json()
        assert response.headers["location"] == f"/v1/exports/{job['id']}"
        assert job["status"] == "collecting"
        assert job["expected_parts"] == ["profile", "segment"]
        assert job["received_parts"] == ["profile"]
        assert job["missing_parts"] == ["segment"]
        assert job["overdue"] is False
        assert job["completed_at"] is None
        assert "document" not in job
        assert await published(session, REQUESTED) == [
            {
                "export_id": job["id"],
                "customer_external_id": "gx-3",
                "customer_external_ids": ["gx-3"],
            }
        ]
        stored = await session.get(ExportJob, uuid.UUID(job["id"]))
        assert stored is not None and str(stored.customer_id) == body["id"]
        assert stored.requested_by == "key:local-admin"

    async def test_is_audited_by_internal_id(self, client, session):
        body = await put_customer(client, "gx-4")
        job = await request(client, "gx-4")
        rows = (
            await session.execute(
                select(audit_table).where(
                    audit_table.c.action == "customer.export_requested",
                    audit_table.c.target_id == body["id"],
                )
            )
        ).all()
        assert [(r.target_id, r.details) for r in rows] == [(body["id"], {"export_id": job["id"]})]

    async def test_without_contributing_services_it_is_done_at_once(
        self, client, session, monkeypatch
    ):
        monkeypatch.setattr(settings, "export_parts", [])
        await put_customer(client, "gx-5", first_name="Solo")
        job = await request(client, "gx-5")
        assert job["status"] == "done"
        assert job["expected_parts"] == ["profile"]
        assert job["completed_at"] is not None
        got = (await client.get(f"/v1/exports/{job['id']}")).json()
        assert list(got["document"]) == ["profile"]
        assert got["document"]["profile"]["tables"]["customer"][0]["first_name"] == "Solo"
        assert len(await published(session, REQUESTED)) == 1


class TestProfilePart:
    async def test_holds_every_table_about_the_merge_group(self, client, session):
        survivor = await seed(client, session, "gp-1", 1)
        duplicate = await seed(client, session, "gp-2", 2)
        merge_id = await merge(session, survivor, duplicate)
        profile = (await document(client, session, "gp-1"))["profile"]
        assert profile["customer_external_id"] == "gp-1"
        assert profile["merged_external_ids"] == ["gp-2"]
        tables = profile["tables"]
        customers = {c["external_id"]: c for c in tables["customer"]}
        assert set(customers) == {"gp-1", "gp-2"}
        assert customers["gp-1"]["email"] == survivor.email
        assert customers["gp-2"]["merged_into_id"] == str(survivor.id)
        assert {i["value"] for i in tables["customer_identity"]} == {
            survivor.anonymous_id,
            duplicate.anonymous_id,
        }
        assert len(tables["consent"]) == 2 and len(tables["consent_history"]) == 2
        assert {t["tag"] for t in tables["customer_tag"]} == {"vip"}
        assert {e["event_id"] for e in tables["behaviour_event"]} == {
            "ev-gp-1",
            "ev-anon-gp-1",
            "ev-gp-2",
            "ev-anon-gp-2",
        }
        assert {o["external_id"] for o in tables["order"]} == {"o-gp-1", "o-gp-2"}
        assert {line["order_id"] for line in tables["order_line"]} == {
            str(survivor.order_id),
            str(duplicate.order_id),
        }
        assert len(tables["order_status_change"]) == 2
        assert [r["amount_minor"] for r in tables["refund"]] == [1500, 1500]
        assert [m["id"] for m in tables["merge"]] == [str(merge_id)]
        assert "export_job" not in tables

    async def test_a_duplicates_id_exports_its_survivors_group(self, client, session):
        survivor = await seed(client, session, "gp-3", 3)
        duplicate = await seed(client, session, "gp-4", 4)
        await merge(session, survivor, duplicate)
        job = await request(client, "gp-4")
        assert (await published(session, REQUESTED))[0]["customer_external_ids"] == [
            "gp-3",
            "gp-4",
        ]
        stored = await session.get(ExportJob, uuid.UUID(job["id"]))
        assert stored is not None and stored.customer_id == survivor.id

    async def test_holds_nothing_of_another_customer(self, client, session):
        await seed(client, session, "gp-5", 5)
        other = await seed(client, session, "gp-6", 6)
        text = str(await document(client, session, "gp-5"))
        for value in (other.external_id, other.email, other.phone, other.anonymous_id, "First6"):
            assert value not in text

    async def test_an_undone_merge_with_another_customer_is_redacted(self, client, session):
        mine = await seed(client, session, "gp-7", 7)
        theirs = await seed(client, session, "gp-8", 8)
        await merge(session, theirs, mine, undone=True)  # mine was folded into theirs, then undone
        profile = (await document(client, session, "gp-7"))["profile"]
        [row] = profile["tables"]["merge"]
        assert row["survivor_id"] is None
        assert row["duplicate_id"] == str(mine.id)
        assert row["filled_fields"] == {}
        assert [c["external_id"] for c in profile["tables"]["customer"]] == ["gp-7"]


class TestGetExport:
    async def test_anonymous(self, anonymous):
        assert (await anonymous.get(f"/v1/exports/{uuid.uuid4()}")).status_code == 401

    async def test_write_scope_is_not_enough(self, writer):
        assert (await writer.get(f"/v1/exports/{uuid.uuid4()}")).status_code == 403

    async def test_unknown(self, client):
        response = await client.get(f"/v1/exports/{uuid.uuid4()}")
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:export-not-found"

    async def test_invalid_id(self, client):
        response = await client.get("/v1/exports/not-a-uuid")
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.export_id"]

    async def test_collecting_has_no_document(self, client):
        await put_customer(client, "gg-1")
        job = await request(client, "gg-1")
        got = (await client.get(f"/v1/exports/{job['id']}")).json()
        assert got["status"] == "collecting"
        assert got["document"] is None
        assert got["missing_parts"] == ["segment"]

    async def test_overdue_stays_collecting_and_names_what_is_missing(self, client, session):
        await put_customer(client, "gg-2")
        job = await request(client, "gg-2")
        past = datetime.now(UTC) - timedelta(seconds=settings.export_overdue_seconds + 5)
        await session.execute(
            update(ExportJob).where(ExportJob.id == uuid.UUID(job["id"])).values(requested_at=past)
        )
        session.expire_all()
        got = (await client.get(f"/v1/exports/{job['id']}")).json()
        assert got["status"] == "collecting"
        assert got["overdue"] is True
        assert got["received_parts"] == ["profile"]
        assert got["missing_parts"] == ["segment"]
        assert got["document"] is None
        assert got["completed_at"] is None

    async def test_done_once_every_part_is_in(self, client, session):
        await put_customer(client, "gg-3", city="Braga")
        job = await request(client, "gg-3")
        segment = {"customers": [{"customer_external_id": "gg-3", "city": "Braga"}]}
        await store_part(session, uuid.UUID(job["id"]), "segment", segment)
        got = (await client.get(f"/v1/exports/{job['id']}")).json()
        assert got["status"] == "done"
        assert got["received_parts"] == ["profile", "segment"]
        assert got["missing_parts"] == []
        assert got["overdue"] is False
        assert got["completed_at"] is not None
        assert list(got["document"]) == ["profile", "segment"]
        assert got["document"]["segment"] == segment
        assert got["document"]["profile"]["tables"]["customer"][0]["city"] == "Braga"


@pytest.mark.parametrize("parts", [["segment", "segment"], ["profile"], ["Bad.Name"]])
def test_export_parts_setting_is_checked(parts):
    from crm_profile.config import Settings

    with pytest.raises(ValueError, match="export_parts"):
        Settings(export_parts=parts)
