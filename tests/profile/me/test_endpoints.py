"""``/v1/me``: a customer's own profile, export and erasure with the customer's JWT."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import or_, select

from crm_common.testing import mint_customer_token
from crm_profile.gdpr.service import store_part
from crm_profile.models import ErasureAudit, ExportJob, audit_table
from tests.profile.conftest import published, put_customer
from tests.profile.gdpr.factories import merge, seed

UPDATED = "crm.profile.customer.updated"
REQUESTED = "crm.profile.export.requested"
ERASED = "crm.profile.customer.erased"


async def audit_about(session, customer_id: str, external_id: str) -> list[str]:
    """Actions of audit entries about a customer (the table also holds other tests' entries)."""
    t = audit_table
    about = or_(
        t.c.target_id.in_([customer_id, external_id]), t.c.actor == f"customer:{external_id}"
    )
    return list((await session.execute(select(t.c.action).where(about))).scalars())


def bearer(external_id: str, **claims) -> dict[str, str]:
    """Headers carrying a customer token for ``external_id``."""
    return {"Authorization": f"Bearer {mint_customer_token(external_id, **claims)}"}


class TestGetMe:
    async def test_without_a_token(self, anonymous):
        assert (await anonymous.get("/v1/me")).status_code == 401

    async def test_an_api_key_is_not_a_customer_token(self, client):
        await put_customer(client, "me-0")
        response = await client.get("/v1/me")  # the admin key
        assert response.status_code == 401

    async def test_an_expired_token(self, client):
        await put_customer(client, "me-00")
        response = await client.get("/v1/me", headers=bearer("me-00", ttl=-3600))
        assert response.status_code == 401

    async def test_unknown_subject(self, client):
        response = await client.get("/v1/me", headers=bearer("me-nobody"))
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:customer-not-found"

    async def test_returns_only_the_limited_fields(self, client):
        await put_customer(
            client,
            "me-1",
            email="me1@example.com",
            phone="+442079460958",
            first_name="Ana",
            birthday="1991-02-03",
            gender="female",
            country="PT",
            city="Porto",
            attributes={"segment_hint": "x"},
        )
        response = await client.get("/v1/me", headers=bearer("me-1"))
        assert response.status_code == 200
        assert response.json() == {
            "external_id": "me-1",
            "email": "me1@example.com",
            "phone": "+442079460958",
            "first_name": "Ana",
            "last_name": None,
            "birthday": "1991-02-03",
            "locale": None,
            "timezone": None,
            "country": "PT",
            "city": "Porto",
        }

    async def test_a_merged_duplicates_token_is_refused(self, client, session):
        survivor = await seed(client, session, "me-2", 41)
        duplicate = await seed(client, session, "me-3", 42)
        await merge(session, survivor, duplicate)
        response = await client.get("/v1/me", headers=bearer("me-3"))
        assert response.status_code == 409
        assert "me-2" not in response.text and survivor.email not in response.text


class TestPatchMe:
    async def test_changes_the_allowed_fields_and_publishes(self, client, session):
        await put_customer(client, "me-10", first_name="Old", city="Porto", email="m10@example.com")
        response = await client.patch(
            "/v1/me",
            headers=bearer("me-10"),
            json={
                "first_name": " New ",
                "last_name": "Name",
                "birthday": "1980-12-31",
                "locale": "pt_PT",
                "timezone": "Europe/Lisbon",
                "city": None,
            },
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["first_name"], body["last_name"], body["locale"]) == ("New", "Name", "pt-PT")
        assert body["city"] is None and body["email"] == "m10@example.com"
        [event] = await published(session, UPDATED)
        assert event["customer_external_id"] == "me-10"
        assert sorted(event["changed_fields"]) == [
            "birthday",
            "city",
            "first_name",
            "last_name",
            "locale",
            "timezone",
        ]

    async def test_nothing_sent_changes_nothing(self, client, session):
        await put_customer(client, "me-11", first_name="Same")
        response = await client.patch("/v1/me", headers=bearer("me-11"), json={})
        assert response.status_code == 200
        assert response.json()["first_name"] == "Same"
        assert await published(session, UPDATED) == []

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("email", "new@example.com"),
            ("phone", "+442079460958"),
            ("country", "DE"),
            ("gender", "male"),
            ("attributes", {}),
            ("external_id", "someone-else"),
            ("timezone", "Mars/Olympus"),
            ("locale", "english"),
            ("birthday", "2999-01-01"),
            ("first_name", ""),
            ("city", "x" * 101),
        ],
    )
    async def test_refused_fields_are_a_422_naming_them(self, client, session, field, value):
        await put_customer(client, "me-12", first_name="Kept")
        response = await client.patch("/v1/me", headers=bearer("me-12"), json={field: value})
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == [f"body.{field}"]
        assert await published(session, UPDATED) == []

    async def test_unknown_subject(self, client):
        response = await client.patch("/v1/me", headers=bearer("me-ghost"), json={"city": "X"})
        assert response.status_code == 404

    async def test_without_a_token(self, anonymous):
        assert (await anonymous.patch("/v1/me", json={"city": "X"})).status_code == 401


class TestExportMe:
    async def test_starts_an_export_of_the_caller(self, client, session):
        body = await put_customer(client, "me-20")
        response = await client.post("/v1/me/export", headers=bearer("me-20"))
        assert response.status_code == 202
        job = response.json()
        assert response.headers["location"] == f"/v1/me/exports/{job['id']}"
        assert (job["status"], job["received_parts"]) == ("collecting", ["profile"])
        stored = await session.get(ExportJob, uuid.UUID(job["id"]))
        assert stored is not None
        assert (str(stored.customer_id), stored.requested_by) == (body["id"], "customer:me-20")
        assert await published(session, REQUESTED) == [
            {
                "export_id": job["id"],
                "customer_external_id": "me-20",
                "customer_external_ids": ["me-20"],
            }
        ]
        assert await audit_about(session, body["id"], "me-20") == []  # only admin changes

    async def test_unknown_subject(self, client, session):
        response = await client.post("/v1/me/export", headers=bearer("me-ghost"))
        assert response.status_code == 404
        assert await published(session, REQUESTED) == []

    async def test_without_a_token(self, anonymous):
        assert (await anonymous.post("/v1/me/export")).status_code == 401


class TestGetMyExport:
    async def test_reads_its_own_export_and_its_document(self, client, session):
        await put_customer(client, "me-30", first_name="Own")
        job = (await client.post("/v1/me/export", headers=bearer("me-30"))).json()
        url = f"/v1/me/exports/{job['id']}"
        collecting = (await client.get(url, headers=bearer("me-30"))).json()
        assert (collecting["status"], collecting["document"]) == ("collecting", None)
        await store_part(session, uuid.UUID(job["id"]), "segment", {"customers": []})
        done = (await client.get(url, headers=bearer("me-30"))).json()
        assert done["status"] == "done"
        customer = done["document"]["profile"]["tables"]["customer"][0]
        assert customer["first_name"] == "Own"

    async def test_an_export_an_operator_started_about_the_caller(self, client):
        await put_customer(client, "me-31")
        job = (await client.post("/v1/customers/me-31/export")).json()
        response = await client.get(f"/v1/me/exports/{job['id']}", headers=bearer("me-31"))
        assert response.status_code == 200

    async def test_another_customers_export_is_not_found(self, client):
        await put_customer(client, "me-32", first_name="Mine")
        await put_customer(client, "me-33", first_name="Theirs")
        theirs = (await client.post("/v1/me/export", headers=bearer("me-33"))).json()
        response = await client.get(f"/v1/me/exports/{theirs['id']}", headers=bearer("me-32"))
        assert response.status_code == 404
        assert response.json()["type"] == "urn:crm:problem:export-not-found"
        assert "Theirs" not in response.text

    async def test_unknown_export(self, client):
        await put_customer(client, "me-34")
        response = await client.get(f"/v1/me/exports/{uuid.uuid4()}", headers=bearer("me-34"))
        assert response.status_code == 404

    async def test_invalid_id(self, client):
        await put_customer(client, "me-35")
        response = await client.get("/v1/me/exports/123", headers=bearer("me-35"))
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["path.export_id"]


class TestEraseMe:
    async def test_erases_the_caller(self, client, session):
        person = await seed(client, session, "me-40", 43)
        response = await client.delete("/v1/me", headers=bearer("me-40"))
        assert response.status_code == 204
        [event] = await published(session, ERASED)
        assert event["erased_external_ids"] == ["me-40"]
        [record] = (
            (
                await session.execute(
                    select(ErasureAudit).where(ErasureAudit.customer_id == person.id)
                )
            )
            .scalars()
            .all()
        )
        assert (record.customer_id, record.requested_by) == (person.id, "customer")
        assert await audit_about(session, str(person.id), "me-40") == []
        assert (await client.get("/v1/me", headers=bearer("me-40"))).status_code == 404
        assert (await client.delete("/v1/me", headers=bearer("me-40"))).status_code == 404
        assert (await client.get("/v1/customers/me-40")).status_code == 404

    async def test_unknown_subject(self, client, session):
        assert (await client.delete("/v1/me", headers=bearer("me-ghost"))).status_code == 404
        assert await published(session, ERASED) == []

    async def test_without_a_token(self, anonymous):
        assert (await anonymous.delete("/v1/me")).status_code == 401
